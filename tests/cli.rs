//! The `lenet` command line: mistakes are refused before any training, with a message naming
//! what was wrong.
#![cfg(not(target_arch = "wasm32"))]

use std::process::{Command, Output};

const SMALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mnist-small");

fn lenet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lenet")).args(args).env_remove("MNIST_DIR").output().unwrap()
}

/// Exit code, stdout and stderr.
fn run(args: &[&str]) -> (i32, String, String) {
    let out = lenet(args);
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn a_folder_given_as_out_or_checkpoint_is_refused_before_training() {
    let dir = std::env::temp_dir();
    let dir = dir.to_str().unwrap();
    for flag in ["--out", "--checkpoint"] {
        let (code, stdout, stderr) = run(&["train", "--data", SMALL, "--stop-at-step", "2", flag, dir]);
        assert_eq!(code, 1, "{flag}: {stderr}");
        assert!(stderr.contains(&format!("{dir} is a folder: give the path of a file to write")), "{flag}: {stderr}");
        assert!(!stdout.contains("step"), "{flag}: it trained first: {stdout}");
    }
}

#[test]
fn an_out_or_checkpoint_that_cannot_be_written_is_refused_before_training_and_a_file_kept() {
    // /proc/version opens for writing as root but refuses the write; /dev/full takes no bytes.
    let kept = std::env::temp_dir().join(format!("lenet-cli-kept-{}.safetensors", std::process::id()));
    std::fs::write(&kept, b"an earlier run's weights").unwrap();
    let kept = kept.to_str().unwrap();
    let cases = [
        (&["--out", "/proc/version"][..], "--out /proc/version cannot be written: "),
        (&["--out", "/dev/full"][..], "--out /dev/full cannot be written: it is not a regular file"),
        (&["--out", kept, "--checkpoint", "/dev/full"][..], "--checkpoint /dev/full cannot be written: it is not a"),
        (&["--out", "/proc/lenet5.safetensors"][..], "--out /proc/lenet5.safetensors cannot be written: "),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["train", "--data", SMALL, "--epochs", "1", "--stop-at-step", "1"];
        args.extend_from_slice(flags);
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 1, "{flags:?}: {stderr}");
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
        assert!(!stdout.contains("step"), "{flags:?}: it trained first: {stdout}");
    }
    let after = std::fs::read(kept);
    std::fs::remove_file(kept).unwrap();
    assert_eq!(after.unwrap(), b"an earlier run's weights");
}

#[test]
fn out_naming_the_checkpoint_is_refused_before_training() {
    // The weights written at the end would have replaced the checkpoint (--resume then read
    // "a weights file, not a checkpoint").
    let dir = std::env::temp_dir().join(format!("lenet-cli-same-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("run.st");
    let dotted = dir.join(".").join("run.st");
    let args = ["--out", file.to_str().unwrap(), "--checkpoint", dotted.to_str().unwrap()];
    let (code, stdout, stderr) =
        run(&[&["train", "--data", SMALL, "--epochs", "1", "--stop-at-step", "1"][..], &args[..]].concat());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--out and --checkpoint name the same file"), "{stderr}");
    assert!(!stdout.contains("step") && !file.exists(), "it trained first: {stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn epochs_past_what_can_be_counted_are_refused() {
    let (code, _, stderr) =
        run(&["train", "--data", SMALL, "--epochs", &u64::MAX.to_string(), "--out", "unused.safetensors"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("--epochs {} of 2500 images is more images than can be counted", u64::MAX)),
        "{stderr}"
    );
}

#[test]
fn a_last_batch_that_reaches_into_the_next_epoch_is_counted_in_images_not_epochs() {
    // 2,500 images in batches of 1,024: 3 steps, 3,072 images.
    let out = std::env::temp_dir().join(format!("lenet-cli-epochs-{}.safetensors", std::process::id()));
    let (code, stdout, stderr) =
        run(&["train", "--data", SMALL, "--epochs", "1", "--batch-size", "1024", "--out", out.to_str().unwrap()]);
    let _ = std::fs::remove_file(&out);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("epoch 1.00/1, step 3: test accuracy"), "{stdout}");
    assert!(stdout.contains("trained to step 3 (3072 images in batches of 1024)"), "{stdout}");
}

#[test]
fn a_run_that_diverges_before_its_first_step_leaves_out_as_it_was() {
    let out = std::env::temp_dir().join(format!("lenet-cli-diverged-{}.safetensors", std::process::id()));
    std::fs::write(&out, b"an earlier run's weights").unwrap();
    let (code, stdout, stderr) = run(&["train", "--data", SMALL, "--lr", "1e6", "--out", out.to_str().unwrap()]);
    let after = std::fs::read(&out);
    std::fs::remove_file(&out).unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("error: training diverged: step 1 would make weights non-finite"), "{stderr}");
    let expected = format!("nothing was trained before it diverged: nothing was written to {}", out.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!stderr.contains("saved"), "{stderr}");
    assert!(!stdout.contains("written"), "{stdout}");
    assert_eq!(after.unwrap(), b"an earlier run's weights");
}

#[test]
fn init_and_resume_together_are_refused() {
    let (code, _, stderr) = run(&["train", "--data", SMALL, "--init", "a.safetensors", "--resume", "b.ckpt"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("'--init <INIT>' cannot be used with '--resume <RESUME>'"), "{stderr}");
}

/// A checkpoint at step 3 of a 1-epoch run on the small set (79 steps), in a fresh folder.
fn checkpoint_at_step_3(name: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("lenet-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = dir.join("ck.st").to_str().unwrap().to_string();
    let first = dir.join("first.safetensors");
    let args = ["train", "--data", SMALL, "--epochs", "1", "--stop-at-step", "3", "--checkpoint", &ck];
    let (code, _, stderr) = run(&[&args[..], &["--out", first.to_str().unwrap()]].concat());
    assert_eq!(code, 0, "{stderr}");
    (dir, ck)
}

#[test]
fn a_resumed_run_refuses_to_stop_before_its_checkpoint_and_says_when_there_is_nothing_to_train() {
    let (dir, ck) = checkpoint_at_step_3("stop-before");
    let out = dir.join("out.safetensors");
    let resume = |stop: &str| {
        run(&["train", "--data", SMALL, "--resume", &ck, "--stop-at-step", stop, "--out", out.to_str().unwrap()])
    };
    let (code, stdout, stderr) = resume("2");
    let written = out.exists();
    let (same_code, same_stdout, same_stderr) = resume("3");
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--stop-at-step 2 is before the checkpoint's step 3"), "{stderr}");
    assert!(!stdout.contains("trained to step"), "{stdout}");
    assert!(!written, "weights were written for a step the run is past");
    assert_eq!(same_code, 0, "{same_stderr}");
    assert!(same_stdout.contains("already at step 3 of 79: nothing to train; weights written to"), "{same_stdout}");
    assert!(!same_stdout.contains("trained to step"), "{same_stdout}");
}

#[test]
fn a_resumed_run_refuses_the_recipe_flags_it_would_ignore() {
    let (dir, ck) = checkpoint_at_step_3("recipe");
    let out = dir.join("out.safetensors");
    let out = out.to_str().unwrap();
    let recipe = ["--lr", "5", "--batch-size", "7", "--epochs", "5", "--no-augment"];
    let (code, stdout, stderr) =
        run(&[&["train", "--data", SMALL, "--resume", &ck, "--out", out][..], &recipe].concat());
    let (seed_code, _, seed_stderr) =
        run(&["train", "--data", SMALL, "--resume", &ck, "--out", out, "--seed", "3", "--stop-at-step", "4"]);
    // The checkpoint's own seed and --threads are not the recipe: the run goes on.
    let (same_code, same_stdout, same_stderr) = run(&[
        "train",
        "--data",
        SMALL,
        "--resume",
        &ck,
        "--out",
        out,
        "--seed",
        "0",
        "--threads",
        "2",
        "--stop-at-step",
        "4",
    ]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("the argument '--resume <RESUME>' cannot be used with"), "{stderr}");
    for flag in ["--lr <LR>", "--batch-size <BATCH_SIZE>", "--epochs <EPOCHS>", "--no-augment"] {
        assert!(stderr.contains(flag), "{flag}: {stderr}");
    }
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(seed_code, 1, "{seed_stderr}");
    assert!(seed_stderr.contains("--seed 3 is not the checkpoint's seed 0"), "{seed_stderr}");
    assert_eq!(same_code, 0, "{same_stderr}");
    assert!(same_stdout.contains("trained to step 4 (128 images in batches of 32)"), "{same_stdout}");
}

#[test]
fn a_checkpoint_that_is_not_one_is_named_once_with_its_path() {
    let path = std::env::temp_dir().join(format!("lenet-cli-{}.ckpt", std::process::id()));
    std::fs::write(&path, [0xffu8; 100]).unwrap();
    let (code, _, stderr) =
        run(&["train", "--data", SMALL, "--resume", path.to_str().unwrap(), "--out", "unused.safetensors"]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(code, 1, "{stderr}");
    let expected = format!("error: checkpoint file: {}: not a valid safetensors file", path.display());
    assert!(stderr.starts_with(&expected), "{stderr}");
    assert_eq!(stderr.matches("checkpoint").count(), 1, "{stderr}");
    assert!(!stderr.contains("weights file"), "{stderr}");
}

#[test]
fn teach_reads_a_negative_number_as_a_value_and_refuses_it() {
    let weights = concat!(env!("CARGO_MANIFEST_DIR"), "/www/public/lenet5-mnist.safetensors");
    let (code, _, stderr) = run(&["teach", "--unipen", "none", "--weights", weights, "--mnist", SMALL, "--lr", "-1"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("learning_rate must be a positive finite number, got -1"), "{stderr}");
}

#[test]
fn teach_refuses_zero_digits_per_label_or_zero_writers() {
    for (per_digit, writers) in [("0", "1"), ("5", "0")] {
        let args = [
            "teach",
            "--unipen",
            "none",
            "--weights",
            "none",
            "--mnist",
            SMALL,
            "--per-digit",
            per_digit,
            "--writers",
            writers,
        ];
        let (code, _, stderr) = run(&args);
        assert_eq!(code, 1, "{stderr}");
        let expected = format!("--per-digit (digits of each label a writer teaches) and --writers must be at least 1, got {per_digit} and {writers}");
        assert!(stderr.contains(&expected), "{stderr}");
    }
}

#[test]
fn teach_refuses_a_held_out_share_outside_zero_to_one_by_its_flag_before_reading_anything() {
    for bad in ["2", "-0.1", "NaN"] {
        let (code, stdout, stderr) =
            run(&["teach", "--unipen", "/no/unipen", "--weights", "/no/w", "--mnist", "/no/mnist", "--held-out", bad]);
        assert_eq!(code, 1, "{bad}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "--held-out: the share of UNIPEN writers held out must be a fraction in [0, 1] (0.2 holds out a fifth), got {bad}"
            )),
            "{bad}: {stderr}"
        );
        assert!(!stderr.contains("/no/"), "{bad}: a file was read first: {stderr}");
        assert!(stdout.is_empty(), "{bad}: {stdout}");
    }
}

#[test]
fn teach_asks_to_lower_per_digit_only_when_it_can_be() {
    // No writer in the fixture has two of every digit: too few for any --per-digit.
    let unipen = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/unipen");
    let weights = concat!(env!("CARGO_MANIFEST_DIR"), "/www/public/lenet5-mnist.safetensors");
    let teach = |per_digit| {
        run(&["teach", "--unipen", unipen, "--weights", weights, "--mnist", SMALL, "--per-digit", per_digit])
    };
    let (code, _, stderr) = teach("1");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("has more than 1 of every digit, so none has digits left to measure after teaching: teach needs a writer with 2 or more of every digit, 1 to teach and 1 to measure"), "{stderr}");
    assert!(!stderr.contains("lower --per-digit"), "{stderr}");
    let (code, _, stderr) = teach("3");
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "has more than 3 of every digit, so none has digits left to measure after teaching: lower --per-digit"
        ),
        "{stderr}"
    );
}

#[test]
fn eval_refuses_data_and_unipen_typed_together_but_not_mnist_dir_beside_unipen() {
    let (code, _, stderr) = run(&["eval", "--weights", "w.safetensors", "--data", SMALL, "--unipen", SMALL]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("eval reads one data set: give --data (MNIST) or --unipen, not both"), "{stderr}");

    // MNIST_DIR is only --data's default: --unipen goes on to read its weights (missing here).
    let out = Command::new(env!("CARGO_BIN_EXE_lenet"))
        .args(["eval", "--weights", "missing.safetensors", "--unipen", SMALL])
        .env("MNIST_DIR", SMALL)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("missing.safetensors: No such file or directory"), "{stderr}");
}

#[test]
fn a_device_or_an_oversized_file_is_refused_without_being_read_whole() {
    // Read whole, /dev/zero took all the memory there was.
    let (code, _, stderr) = run(&["eval", "--weights", "/dev/zero", "--data", SMALL]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("/dev/zero: is not a regular file (a device or a named pipe?)"), "{stderr}");

    let path = std::env::temp_dir().join(format!("lenet-cli-big-{}.safetensors", std::process::id()));
    std::fs::write(&path, vec![0u8; 2_000_000]).unwrap();
    let (code, _, stderr) = run(&["eval", "--weights", path.to_str().unwrap(), "--data", SMALL]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(": 2000000 bytes, more than the 1295408 bytes accepted here"), "{stderr}");
}

#[test]
fn a_held_out_share_outside_zero_to_one_is_refused_before_any_data_is_read() {
    // Neither folder exists: the share is checked first, so it is the one named.
    for bad in ["2", "-0.1", "NaN"] {
        let (code, stdout, stderr) =
            run(&["train", "--data", "/no/mnist", "--unipen", "/no/unipen", "--unipen-held-out", bad]);
        assert_eq!(code, 1, "{bad}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "--unipen-held-out: the share of UNIPEN writers held out must be a fraction in [0, 1] (0.2 holds out a fifth), got {bad}"
            )),
            "{bad}: {stderr}"
        );
        assert!(!stderr.contains("/no/"), "{bad}: a folder was read first: {stderr}");
        assert!(stdout.is_empty(), "{bad}: {stdout}");
    }
}

#[test]
fn a_unipen_repeat_of_zero_is_refused() {
    let (code, _, stderr) = run(&["train", "--data", "/no/mnist", "--unipen", "/no/unipen", "--unipen-repeat", "0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--unipen-repeat") && stderr.contains("0 is not in 1..=100"), "{stderr}");
}

#[test]
fn a_folder_that_is_not_a_unipen_distribution_is_named_with_the_one_to_give() {
    // A folder that exists but holds no data/1a/, as the distribution's parent folder does.
    let dir = std::env::temp_dir().join(format!("lenet-cli-unipen-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("train_r01_v07")).unwrap();
    let weights = concat!(env!("CARGO_MANIFEST_DIR"), "/www/public/lenet5-mnist.safetensors");
    let (code, _, stderr) = run(&["eval", "--weights", weights, "--unipen", dir.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} is not a UNIPEN distribution's folder: it has no data/1a/ (the isolated digits); give the folder that holds data/ and include/",
            dir.display()
        )),
        "{stderr}"
    );
    // A folder that does not exist is named as such.
    let (code, _, stderr) = run(&["eval", "--weights", weights, "--unipen", "/no/unipen"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("/no/unipen: No such file or directory"), "{stderr}");
}

#[test]
fn a_setting_the_core_refuses_is_named_by_its_flag() {
    for (args, expected) in [
        (&["--batch-size", "0"][..], "error: --batch-size: batch_size must be a whole number from 1 to 4096, got 0"),
        (&["--lr", "-1"][..], "error: --lr: learning_rate must be a positive finite number, got -1"),
        (&["--momentum", "1.5"][..], "error: --momentum: momentum must be in [0, 1), got 1.5"),
    ] {
        let mut all = vec!["train", "--data", "/no/mnist"];
        all.extend_from_slice(args);
        let (code, _, stderr) = run(&all);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
