//! `lenet`: train, evaluate and benchmark LeNet-5 natively on MNIST's IDX files.
//!
//! A thin face over the library: argument parsing (clap), progress bars (indicatif) and
//! printing; all the math is in the crate.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::time::Instant;

    use clap::parser::ValueSource;
    use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
    use indicatif::{ProgressBar, ProgressStyle};
    use lenet::data::augment::Augment;
    use lenet::data::idx::{self, Split};
    use lenet::data::unipen;
    use lenet::model::{Workspace, NUM_CLASSES};
    use lenet::optim::OptimizerKind;
    use lenet::session::{Session, Settings};
    use lenet::teach::{self, TeachRecipe, Teaching};
    use lenet::train::{evaluate, Evaluation, LrSchedule};
    use lenet::{weights, Error};
    use ndarray::Axis;

    #[derive(Parser)]
    #[command(name = "lenet", version, about = "LeNet-5 from scratch: train, evaluate and benchmark on MNIST")]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Clone, Copy, ValueEnum)]
    enum Schedule {
        Constant,
        Cosine,
        Step,
    }

    impl From<Schedule> for LrSchedule {
        fn from(s: Schedule) -> Self {
            match s {
                Schedule::Constant => LrSchedule::Constant,
                Schedule::Cosine => LrSchedule::Cosine,
                Schedule::Step => LrSchedule::Step,
            }
        }
    }

    #[derive(Clone, Copy, ValueEnum)]
    enum Optimizer {
        Sgd,
        Adam,
        Adamw,
    }

    impl From<Optimizer> for OptimizerKind {
        fn from(o: Optimizer) -> Self {
            match o {
                Optimizer::Sgd => OptimizerKind::Sgd,
                Optimizer::Adam => OptimizerKind::Adam,
                Optimizer::Adamw => OptimizerKind::AdamW,
            }
        }
    }

    /// The recipe's options of `lenet train`; defaults are the crate's recipe ([`Settings`]).
    #[derive(clap::Args)]
    struct TrainArgs {
        /// Folder holding MNIST's four IDX files (plain or .gz).
        #[arg(long, env = "MNIST_DIR")]
        data: PathBuf,
        /// Passes over the training images (30: the recipe of the pretrained weights).
        #[arg(long, default_value_t = 30)]
        epochs: usize,
        /// Images per optimizer step.
        #[arg(long, default_value_t = Settings::default().batch_size)]
        batch_size: usize,
        /// The optimizer.
        #[arg(long, value_enum, default_value_t = Optimizer::Sgd)]
        optimizer: Optimizer,
        /// Base learning rate.
        #[arg(long, default_value_t = Settings::default().learning_rate)]
        lr: f32,
        /// How the learning rate changes over the run.
        #[arg(long, value_enum, default_value_t = Schedule::Cosine)]
        schedule: Schedule,
        /// SGD momentum.
        #[arg(long, default_value_t = Settings::default().momentum)]
        momentum: f32,
        /// Weight decay: L2 for SGD and Adam, decoupled for AdamW.
        #[arg(long, default_value_t = Settings::default().weight_decay)]
        weight_decay: f32,
        /// Train on the images as they are, without random distortions.
        #[arg(long)]
        no_augment: bool,
        /// Seed of the initial weights, the data order, the augmentation and the UNIPEN writers
        /// held out (0 unless given). Beside --resume it only splits --unipen's writers again, and
        /// must be the checkpoint's.
        #[arg(long)]
        seed: Option<u64>,
        /// Images per gradient shard: part of the recipe (it sets the order of the gradient sum);
        /// the weights do not depend on --threads.
        #[arg(long, default_value_t = Settings::default().shard_size)]
        shard_size: usize,
        /// Threads computing the shards of each batch and the update (1 to 256).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Where to write the trained weights (safetensors).
        #[arg(long, default_value = "lenet5.safetensors")]
        out: PathBuf,
        /// Write the whole training state here after every epoch and at the end (see --resume).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Go on from a checkpoint written by --checkpoint, with its settings, to the same result
        /// as an uninterrupted run: the recipe's flags (--epochs, --lr, …) are refused beside it.
        #[arg(long, conflicts_with_all = ["epochs", "batch_size", "optimizer", "lr", "schedule", "momentum", "weight_decay", "no_augment", "shard_size"])]
        resume: Option<PathBuf>,
        /// Stop after this optimizer step (writing --checkpoint and --out), e.g. to resume later.
        #[arg(long)]
        stop_at_step: Option<u64>,
        /// Start from these weights (safetensors) instead of a seeded initialisation: fine-tuning.
        #[arg(long, conflicts_with = "resume")]
        init: Option<PathBuf>,
        /// Also train on the isolated digits of the UNIPEN distribution in this folder (the one
        /// holding data/ and include/), rendered from their pen strokes as the page renders a
        /// drawing; a share of its writers is held out and evaluated at the end.
        #[arg(long)]
        unipen: Option<PathBuf>,
        /// Fraction of the UNIPEN writers held out from training.
        #[arg(long, default_value_t = 0.2)]
        unipen_held_out: f64,
        /// How many times each UNIPEN training digit appears in an epoch (1 to 100).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=100))]
        unipen_repeat: u16,
    }

    /// The options of `lenet teach`; the recipe's defaults are the page's ([`TeachRecipe`]).
    #[derive(clap::Args)]
    struct TeachArgs {
        /// A UNIPEN distribution's folder (the one holding data/ and include/).
        #[arg(long)]
        unipen: PathBuf,
        /// The weights to teach (safetensors).
        #[arg(long)]
        weights: PathBuf,
        /// Folder holding MNIST's IDX files: its training digits are replayed, its test digits
        /// measure forgetting.
        #[arg(long, env = "MNIST_DIR")]
        mnist: PathBuf,
        /// How many of the worst-read writers to teach, overall and among the held-out ones.
        #[arg(long, default_value_t = 5)]
        writers: usize,
        /// Digits of each label a writer labels to teach (the first ones they wrote).
        #[arg(long, default_value_t = 5)]
        per_digit: usize,
        /// The fraction of UNIPEN writers `train --unipen` held out (its --unipen-held-out),
        /// to tell writers the weights never saw.
        #[arg(long, default_value_t = 0.2)]
        held_out: f64,
        /// The seed of that writer split (`train`'s --seed).
        #[arg(long, default_value_t = 0)]
        split_seed: u64,
        /// Optimizer steps (the recipe's unless given).
        #[arg(long)]
        steps: Option<u64>,
        /// Learning rate (the recipe's unless given).
        #[arg(long)]
        lr: Option<f32>,
        /// Share of the writer's digits in what is trained on (the recipe's unless given).
        #[arg(long)]
        mine_share: Option<f64>,
        /// Replayed MNIST training digits (the recipe's unless given).
        #[arg(long)]
        replay: Option<usize>,
        /// Distort the digits taught on at random (the crate's augmentation), which the recipe
        /// does not.
        #[arg(long)]
        augment: bool,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Train from a fresh seeded initialisation (or a checkpoint); print test accuracy after
        /// every epoch.
        #[command(allow_negative_numbers = true)]
        Train(TrainArgs),
        /// Accuracy, per-class accuracy and confusion matrix of saved weights on MNIST's test set,
        /// or on UNIPEN's isolated digits (pen strokes, rendered as MNIST was made).
        Eval {
            /// A safetensors file written by `train` (or by PyTorch, same names and shapes).
            #[arg(long)]
            weights: PathBuf,
            /// Folder holding MNIST's IDX files.
            #[arg(long, env = "MNIST_DIR", required_unless_present = "unipen")]
            data: Option<PathBuf>,
            /// A UNIPEN distribution's folder (the one holding data/ and include/): evaluate on
            /// its isolated digits (data/1a) instead of MNIST.
            #[arg(long)]
            unipen: Option<PathBuf>,
        },
        /// How much teaching a writer's handwriting helps (the page's "Teach" recipe): for the UNIPEN
        /// writers the weights misread most, teach the first --per-digit of each of their digits
        /// and report their other digits' accuracy and MNIST's test accuracy before → after.
        #[command(allow_negative_numbers = true)]
        Teach(TeachArgs),
        /// Training throughput (on --threads threads) and single-image inference time (one
        /// thread), on real data.
        Bench {
            /// Folder holding MNIST's IDX files.
            #[arg(long, env = "MNIST_DIR")]
            data: PathBuf,
            /// Timed training steps per round (after 50 warm-up steps).
            #[arg(long, default_value_t = 300)]
            steps: usize,
            /// Timed rounds; the fastest is reported, as other work can only slow one down.
            #[arg(long, default_value_t = 3)]
            rounds: usize,
            /// Images per training step.
            #[arg(long, default_value_t = 64)]
            batch_size: usize,
            /// Threads computing the shards of each batch (shards of 16 images) and the update (1
            /// to 256).
            #[arg(long, default_value_t = 1)]
            threads: usize,
            /// Also time a one-thread session in rounds alternating with the --threads one's, and
            /// print the speed-up: both sides see the same moments of a shared machine.
            #[arg(long)]
            against_one_thread: bool,
            /// Also print the figures as one JSON line.
            #[arg(long)]
            json: bool,
        },
    }

    pub fn main() -> ExitCode {
        // Rust ignores SIGPIPE, so `lenet eval … | head` would panic on the closed pipe; a
        // command-line tool should just stop, as the default action does.
        #[cfg(unix)]
        // SAFETY: setting a signal's disposition to its default, before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
        let matches = Cli::command().get_matches();
        // `eval` reads one data set. --data typed beside --unipen is a contradiction; MNIST_DIR in
        // the environment is only --data's default, which --unipen overrides.
        if let Some(("eval", eval)) = matches.subcommand() {
            if eval.value_source("data") == Some(ValueSource::CommandLine) && eval.contains_id("unipen") {
                let mut command = Cli::command().bin_name("lenet");
                command.build();
                command
                    .find_subcommand_mut("eval")
                    .expect("eval is a subcommand")
                    .error(
                        clap::error::ErrorKind::ArgumentConflict,
                        "eval reads one data set: give --data (MNIST) or --unipen, not both",
                    )
                    .exit();
            }
        }
        let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let result = match cli.command {
            Command::Train(args) => train(&args),
            Command::Eval { weights, unipen: Some(dir), .. } => eval_unipen(&weights, &dir),
            Command::Eval { weights, data: Some(data), .. } => eval(&weights, &data),
            Command::Eval { .. } => Err(Error::InvalidInput("eval needs --data (MNIST) or --unipen".into())),
            Command::Teach(args) => teach(&args),
            Command::Bench { data, steps, rounds, batch_size, threads, against_one_thread, json } => {
                bench(&data, steps, rounds, batch_size, threads, against_one_thread, json)
            }
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let flagged = match &e {
                    Error::Setting { name, message } => flag_of(name).map(|flag| format!("{flag}: {name} {message}")),
                    _ => None,
                };
                eprintln!("error: {}", flagged.unwrap_or_else(|| e.to_string()));
                ExitCode::FAILURE
            }
        }
    }

    /// The command-line flag behind a setting the core refused ([`Error::Setting`], named by
    /// its field), so the person sees what they typed.
    fn flag_of(field: &str) -> Option<&'static str> {
        const FLAGS: [(&str, &str); 7] = [
            ("batch_size", "--batch-size"),
            ("shard_size", "--shard-size"),
            ("learning_rate", "--lr"),
            ("momentum", "--momentum"),
            ("weight_decay", "--weight-decay"),
            ("mine_share", "--mine-share"),
            ("threads", "--threads"),
        ];
        FLAGS.iter().find(|(name, _)| *name == field).map(|(_, flag)| *flag)
    }

    fn train(args: &TrainArgs) -> lenet::Result<()> {
        if args.epochs == 0 || args.threads == 0 {
            return Err(Error::InvalidInput(format!(
                "--epochs and --threads must be at least 1, got {} and {}",
                args.epochs, args.threads
            )));
        }
        // The weights written at the end would replace a checkpoint of the same path, and with it
        // the point a later --resume goes on from.
        for (flag, other) in [("--checkpoint", &args.checkpoint), ("--resume", &args.resume)] {
            if other.as_ref().is_some_and(|other| same_file(&args.out, other)) {
                return Err(Error::InvalidInput(format!(
                    "--out and {flag} name the same file, {}: the weights written at the end would replace \
                     the checkpoint; give --out another file",
                    args.out.display()
                )));
            }
        }
        // Find out now, not after the whole run, that the weights could not be written.
        let targets = [("--out", Some(&args.out)), ("--checkpoint", args.checkpoint.as_ref())];
        for (flag, path) in targets.into_iter().filter_map(|(flag, path)| Some((flag, path?))) {
            let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if !folder.is_dir() {
                return Err(Error::InvalidInput(format!(
                    "{flag} {}: the folder {} does not exist",
                    path.display(),
                    folder.display()
                )));
            }
            if path.is_dir() {
                return Err(Error::InvalidInput(format!(
                    "{flag} {} is a folder: give the path of a file to write, e.g. {}",
                    path.display(),
                    path.join("lenet5.safetensors").display()
                )));
            }
            check_writable(flag, path)?;
        }
        // Before minutes of reading MNIST and UNIPEN.
        if let Err(Error::InvalidInput(message)) = unipen::check_fraction_held_out(args.unipen_held_out) {
            return Err(Error::InvalidInput(format!("--unipen-held-out: {message}")));
        }
        // The schedule's length waits for the data's size; the rest is checked now.
        let settings = Settings {
            seed: args.seed.unwrap_or(0),
            optimizer: args.optimizer.into(),
            learning_rate: args.lr,
            momentum: args.momentum,
            weight_decay: args.weight_decay,
            batch_size: args.batch_size,
            shard_size: args.shard_size,
            schedule: args.schedule.into(),
            augment: (!args.no_augment).then(Augment::default),
            eval_limit: 0,
            ..Settings::default()
        };
        settings.validate()?;
        let mut train_set = idx::load_digits(&args.data, Split::Train)?;
        let test_set = idx::load_digits(&args.data, Split::Test)?;
        let mut unipen_held_out = None;
        if let Some(dir) = &args.unipen {
            let digits = unipen::load(dir)?;
            let (train_part, held) = unipen::split_by_writer(&digits, args.unipen_held_out, args.seed.unwrap_or(0))?;
            let (images, labels) = unipen::render_dataset(&train_part);
            let rendered = lenet::data::digits::Digits::new(images, labels)?;
            for _ in 0..args.unipen_repeat {
                train_set.extend(&rendered);
            }
            println!(
                "UNIPEN from {}: {} digits to train on (×{}), {} of held-out writers",
                dir.display(),
                rendered.len(),
                args.unipen_repeat,
                held.len()
            );
            unipen_held_out = Some(unipen::dataset(&held)?);
        }
        let n = train_set.len();
        let images = args.epochs.checked_mul(n).ok_or_else(|| {
            Error::InvalidInput(format!("--epochs {} of {n} images is more images than can be counted", args.epochs))
        })?;
        let total_steps = (images as u64).div_ceil(args.batch_size.max(1) as u64);
        let settings = Settings { schedule_steps: total_steps, ..settings };
        let mut session = match &args.init {
            Some(path) => Session::with_model(weights::load(path)?, settings)?,
            None => Session::new(settings)?,
        };
        session.set_threads(args.threads)?;
        session.set_train_data(train_set)?;
        session.set_test_data(test_set);
        if let Some(path) = &args.resume {
            match weights::from_file(path, weights::MAX_CHECKPOINT_FILE_BYTES, |bytes| session.restore(bytes)) {
                // The writers held out were drawn with the seed before the checkpoint could be
                // read, so a run seeded otherwise renders other training digits.
                Err(Error::InvalidInput(message)) if args.unipen.is_some() && args.seed.is_none() => {
                    return Err(Error::InvalidInput(format!(
                        "{message} (with --unipen, give the checkpointed run's --seed: it chose the writers held out)"
                    )));
                }
                result => result?,
            }
            let checkpoint = session.settings().seed;
            if let Some(seed) = args.seed.filter(|&seed| seed != checkpoint) {
                return Err(Error::InvalidInput(format!(
                    "--seed {seed} is not the checkpoint's seed {checkpoint}: a resumed run goes on with the checkpoint's"
                )));
            }
            println!("resumed from {} at step {} (its settings apply)", path.display(), session.progress().step);
        }
        let start = session.progress().step;
        if let Some(at) = args.stop_at_step.filter(|&at| at < start) {
            return Err(Error::InvalidInput(format!(
                "--stop-at-step {at} is before the checkpoint's step {start}: give a later step, or none to finish the run"
            )));
        }
        let s = *session.settings();
        let total_steps = s.schedule_steps;
        println!(
            "LeNet-5, {} parameters; {n} training and {} test images from {}",
            session.model().num_parameters(),
            session.progress().test_count,
            args.data.display()
        );
        println!(
            "{:?}: batch {}, learning rate {} ({:?} over {total_steps} steps), momentum {}, weight decay {}, augmentation {}, seed {}, {} thread(s)",
            s.optimizer,
            s.batch_size,
            s.learning_rate,
            s.schedule,
            s.momentum,
            s.weight_decay,
            if s.augment.is_some() { "on" } else { "off" },
            s.seed,
            args.threads
        );
        let stop = args.stop_at_step.unwrap_or(total_steps).min(total_steps);
        let started = Instant::now();
        let epochs = (total_steps as f64 * s.batch_size as f64 / n as f64).round() as u64;
        let bar = ProgressBar::new(n as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        let mut epoch_start = (Instant::now(), session.progress().seen);
        let mut smoothed = None::<f32>;
        while session.progress().step < stop {
            let outcome = session.step()?;
            if let Some(reason) = outcome.diverged {
                bar.abandon();
                // The weights this run started from would replace what --out held, often an
                // earlier run's trained weights, with nothing learned.
                if session.progress().step == start {
                    eprintln!("nothing was trained before it diverged: nothing was written to {}", args.out.display());
                    return Err(Error::Diverged(reason));
                }
                weights::save(session.model(), &args.out)?;
                eprintln!("the last good weights were saved to {}", args.out.display());
                return Err(Error::Diverged(reason));
            }
            let sm = smoothed.map_or(outcome.loss, |v| 0.98 * v + 0.02 * outcome.loss);
            smoothed = Some(sm);
            let epoch_done = outcome.seen / n as u64;
            bar.set_prefix(format!("{}/{epochs}", (epoch_done + 1).min(epochs)));
            bar.set_position(outcome.seen % n as u64);
            if outcome.step % 20 == 0 {
                let rate = (outcome.seen - epoch_start.1) as f64 / epoch_start.0.elapsed().as_secs_f64();
                bar.set_message(format!("loss {sm:.4} lr {:.4} {rate:.0} examples/s", outcome.learning_rate));
            }
            let finished = outcome.step == stop;
            if outcome.seen / n as u64 > (outcome.seen - s.batch_size as u64) / n as u64 || finished {
                bar.suspend(|| -> lenet::Result<()> {
                    let result = session.evaluate_all()?;
                    let rate = (outcome.seen - epoch_start.1) as f64 / epoch_start.0.elapsed().as_secs_f64();
                    println!(
                        "epoch {:.2}/{epochs}, step {}: test accuracy {:.2} % ({}/{}), test loss {:.4}, {rate:.0} examples/s",
                        // Steps take whole batches, so the last may reach into the next epoch's
                        // order: the final line says how many images that made.
                        (outcome.seen as f64 / n as f64).min(epochs as f64),
                        outcome.step,
                        100.0 * result.accuracy,
                        result.correct,
                        result.count,
                        result.loss,
                    );
                    if let Some(path) = &args.checkpoint {
                        write(path, &session.checkpoint()?)?;
                    }
                    Ok(())
                })?;
                epoch_start = (Instant::now(), outcome.seen);
            }
        }
        bar.finish_and_clear();
        if let Some(held) = &unipen_held_out {
            if !held.is_empty() {
                let result =
                    evaluate(session.model(), &mut Workspace::default(), held.images.view(), &held.labels, 1000)?;
                println!("UNIPEN, held-out writers:");
                print_evaluation(&result);
            }
        }
        weights::save(session.model(), &args.out)?;
        if start == stop {
            println!(
                "already at step {stop} of {total_steps}: nothing to train; weights written to {}",
                args.out.display()
            );
            return Ok(());
        }
        println!(
            "trained to step {stop} ({} images in batches of {}) in {:.1} s; weights written to {}",
            session.progress().seen,
            s.batch_size,
            started.elapsed().as_secs_f64(),
            args.out.display()
        );
        Ok(())
    }

    /// Fails, naming `flag` and `path`, unless the file there can be written as `train` writes
    /// it at the end, without changing it: an existing file must be a regular one that takes a
    /// write, a new one must be creatable (it is created and removed).
    /// Whether `a` and `b` name one file: the same canonical path where it exists, else the same
    /// name in the same (canonical) folder.
    fn same_file(a: &Path, b: &Path) -> bool {
        let resolved = |p: &Path| {
            p.canonicalize().ok().or_else(|| {
                let folder = p.parent().filter(|f| !f.as_os_str().is_empty()).unwrap_or(Path::new("."));
                Some(folder.canonicalize().ok()?.join(p.file_name()?))
            })
        };
        a == b || resolved(a).is_some_and(|a| resolved(b) == Some(a))
    }

    fn check_writable(flag: &str, path: &Path) -> lenet::Result<()> {
        use std::io::Write;
        let refused = |why: String| Error::InvalidInput(format!("{flag} {} cannot be written: {why}", path.display()));
        match std::fs::metadata(path) {
            Ok(metadata) => {
                // A device takes its writes elsewhere or refuses them (/dev/full), and writing
                // a named pipe waits for a reader: neither keeps the weights.
                if !metadata.is_file() {
                    return Err(refused("it is not a regular file (a device or a named pipe?)".into()));
                }
                // Opened without truncating, so the file the person had stays as it is. A write
                // of no bytes still goes to the file system, which refuses it where the real
                // write would fail although the file opens (e.g. /proc/version, for root).
                let mut file =
                    std::fs::OpenOptions::new().write(true).open(path).map_err(|e| refused(e.to_string()))?;
                file.write(&[]).map_err(|e| refused(e.to_string()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path)
                    .map_err(|e| refused(e.to_string()))?;
                std::fs::remove_file(path).map_err(|e| refused(e.to_string()))?;
            }
            Err(e) => return Err(refused(e.to_string())),
        }
        Ok(())
    }

    fn write(path: &Path, bytes: &[u8]) -> lenet::Result<()> {
        std::fs::write(path, bytes).map_err(|e| Error::Io { path: path.display().to_string(), source: e })
    }

    fn eval(weights_path: &Path, dir: &Path) -> lenet::Result<()> {
        let model = weights::load(weights_path)?;
        let test_set = idx::load(dir, Split::Test)?;
        let result = evaluate(&model, &mut Workspace::default(), test_set.images.view(), &test_set.labels, 1000)?;
        println!("{}: test accuracy", weights_path.display());
        print_evaluation(&result);
        Ok(())
    }

    /// Accuracy, per-class accuracy and the confusion matrix, as `eval` prints them.
    fn print_evaluation(result: &Evaluation) {
        println!(
            "accuracy {:.2} % ({}/{}), loss {:.4}",
            100.0 * result.accuracy,
            result.correct,
            result.count,
            result.loss
        );
        print_confusion(result);
    }

    /// Evaluates on UNIPEN's isolated digits, each rendered by the library's stroke pipeline.
    fn eval_unipen(weights_path: &Path, dir: &Path) -> lenet::Result<()> {
        let model = weights::load(weights_path)?;
        let started = Instant::now();
        let (digits, report) = unipen::load_with_report(dir)?;
        let loaded = started.elapsed().as_secs_f64();
        let set = unipen::dataset(&digits)?;
        let rendered = started.elapsed().as_secs_f64() - loaded;
        let writers: std::collections::BTreeSet<&str> = digits.iter().map(|d| d.writer.as_str()).collect();
        println!(
            "{}: {} UNIPEN digits of {} writers from {} segment files (read in {loaded:.1} s, rendered in {rendered:.1} s)",
            dir.display(),
            set.len(),
            writers.len(),
            report.files
        );
        println!("skipped {} of {} segments:", report.skipped_total(), report.segments);
        for (reason, count) in &report.skipped {
            println!("  {count:6}  {reason}");
        }
        let result = evaluate(&model, &mut Workspace::default(), set.images.view(), &set.labels, 1000)?;
        println!("\n{}: UNIPEN", weights_path.display());
        print_evaluation(&result);
        Ok(())
    }

    /// `lenet teach`: worst writers first, overall and among those the weights never saw.
    fn teach(args: &TeachArgs) -> lenet::Result<()> {
        if args.per_digit == 0 || args.writers == 0 {
            return Err(Error::InvalidInput(format!(
                "--per-digit (digits of each label a writer teaches) and --writers must be at least 1, got {} and {}",
                args.per_digit, args.writers
            )));
        }
        // Before the weights, MNIST and UNIPEN are read, as train checks its --unipen-held-out.
        if let Err(Error::InvalidInput(message)) = unipen::check_fraction_held_out(args.held_out) {
            return Err(Error::InvalidInput(format!("--held-out: {message}")));
        }
        let model = weights::load(&args.weights)?;
        let defaults = TeachRecipe::default();
        let recipe = TeachRecipe {
            steps: args.steps.unwrap_or(defaults.steps),
            replay_count: args.replay.unwrap_or(defaults.replay_count),
            mine_share: args.mine_share.unwrap_or(defaults.mine_share),
            settings: Settings {
                learning_rate: args.lr.unwrap_or(defaults.settings.learning_rate),
                augment: if args.augment { Some(Augment::default()) } else { defaults.settings.augment },
                ..defaults.settings
            },
        };
        recipe.validate()?;
        let replay = idx::load_digits(&args.mnist, Split::Train)?;
        let mnist_test = idx::load_digits(&args.mnist, Split::Test)?;
        let digits = unipen::load(&args.unipen)?;
        let (_, held) = unipen::split_by_writer(&digits, args.held_out, args.split_seed)?;
        let unseen: std::collections::BTreeSet<&str> = held.iter().map(|d| d.writer.as_str()).collect();
        let ranked = teach::rank_writers(&model, &digits, args.per_digit)?;
        if ranked.is_empty() {
            // 1 is the least --per-digit: then it is the distribution that is too small.
            let remedy = if args.per_digit > 1 {
                "lower --per-digit"
            } else {
                "teach needs a writer with 2 or more of every digit, 1 to teach and 1 to measure"
            };
            return Err(Error::InvalidInput(format!(
                "no writer in {} has more than {} of every digit, so none has digits left to measure after teaching: {remedy}",
                args.unipen.display(),
                args.per_digit
            )));
        }
        let mnist_before = teach::accuracy(&model, &mnist_test)?.unwrap_or(0.0);
        println!(
            "{} UNIPEN writers with more than {} of every digit ({} of them held out from training); recipe: {} steps of {}, learning rate {}, mine share {}, {} replayed MNIST digits, augmentation {}",
            ranked.len(),
            args.per_digit,
            ranked.iter().filter(|w| unseen.contains(w.writer.as_str())).count(),
            recipe.steps,
            recipe.settings.batch_size,
            recipe.settings.learning_rate,
            recipe.mine_share,
            recipe.replay_count,
            if recipe.settings.augment.is_some() { "on" } else { "off" }
        );
        let worst = ranked.iter().take(args.writers);
        let worst_unseen = ranked.iter().filter(|w| unseen.contains(w.writer.as_str())).take(args.writers);
        for (title, writers) in [
            ("worst-read writers overall", worst.collect::<Vec<_>>()),
            ("worst-read held-out writers (never trained on)", worst_unseen.collect()),
        ] {
            println!("\n{title}:\n");
            println!("| writer | held out | digits (taught + other) | other digits read right, before → after | MNIST test before → after | still misread (label→read) |");
            println!("| --- | --- | ---: | ---: | ---: | --- |");
            for writer in writers {
                let taken = teach::take_per_digit(writer.digits.labels(), args.per_digit)
                    .ok_or_else(|| Error::InvalidInput(format!("{}: too few digits", writer.writer)))?;
                let (others, learn) = teach::split(&writer.digits, &taken)?;
                let mut teaching = Teaching::new(model.clone(), &learn, others, &replay, &recipe)?;
                let before = teaching.held_out_accuracy()?.unwrap_or(0.0);
                teaching.run()?;
                let after = teaching.held_out_accuracy()?.unwrap_or(0.0);
                let mnist_after = teach::accuracy(teaching.model(), &mnist_test)?.unwrap_or(0.0);
                let other = teaching.held_out();
                let misread: Vec<String> = teach::predictions(teaching.model(), other)?
                    .iter()
                    .zip(other.labels())
                    .filter(|(p, l)| p != l)
                    .map(|(p, l)| format!("{l}→{p}"))
                    .collect();
                let right = |a: f64| (a * other.len() as f64).round() as usize;
                println!(
                    "| {} | {} | {} + {} | {:.2} % ({}) → {:.2} % ({}) | {:.2} % → {:.2} % | {} |",
                    writer.writer,
                    if unseen.contains(writer.writer.as_str()) { "yes" } else { "no" },
                    learn.len(),
                    other.len(),
                    100.0 * before,
                    right(before),
                    100.0 * after,
                    right(after),
                    100.0 * mnist_before,
                    100.0 * mnist_after,
                    misread.join(" ")
                );
            }
        }
        Ok(())
    }

    /// Per-class accuracy and the confusion matrix (rows: true digit, columns: predicted).
    fn print_confusion(result: &Evaluation) {
        println!("\nper class:");
        for (digit, row) in result.confusion.iter().enumerate() {
            let total: u64 = row.iter().sum();
            println!("  {digit}: {:6.2} % of {total}", 100.0 * result.per_class[digit]);
        }
        println!("\nconfusion matrix (rows: true digit, columns: predicted):");
        print!("     ");
        for p in 0..NUM_CLASSES {
            print!("{p:>6}");
        }
        println!();
        for (digit, row) in result.confusion.iter().enumerate() {
            print!("  {digit}: ");
            for v in row {
                print!("{v:>6}");
            }
            println!();
        }
    }

    /// Steps `session` `count` times; returns the seconds taken.
    fn time_steps(session: &mut Session, count: usize) -> lenet::Result<f64> {
        let start = Instant::now();
        for _ in 0..count {
            if let Some(reason) = session.step()?.diverged {
                return Err(Error::Diverged(reason));
            }
        }
        Ok(start.elapsed().as_secs_f64())
    }

    fn bench(
        dir: &Path,
        steps: usize,
        rounds: usize,
        batch_size: usize,
        threads: usize,
        against_one_thread: bool,
        json: bool,
    ) -> lenet::Result<()> {
        if steps == 0 || rounds == 0 || batch_size == 0 || threads == 0 {
            return Err(Error::InvalidInput(format!(
                "--steps, --rounds, --batch-size and --threads must be at least 1, got {steps}, {rounds}, {batch_size} and {threads}"
            )));
        }
        if against_one_thread && threads < 2 {
            return Err(Error::InvalidInput(format!(
                "--against-one-thread compares with --threads 2 or more, got --threads {threads}"
            )));
        }
        let train_set = idx::load_digits(dir, Split::Train)?;
        let one_image = idx::load(dir, Split::Test)?;
        // The session's own loop (batch gather included), on the images as they are: the
        // figure is the network's speed, comparable with a peer's.
        let settings = Settings {
            batch_size,
            learning_rate: 0.01,
            schedule: LrSchedule::Constant,
            augment: None,
            ..Settings::default()
        };
        let mut single = if against_one_thread {
            let mut single = Session::new(settings)?;
            single.set_train_data(train_set.clone())?;
            time_steps(&mut single, 50)?;
            Some(single)
        } else {
            None
        };
        let mut session = Session::new(settings)?;
        session.set_threads(threads)?;
        session.set_train_data(train_set)?;
        time_steps(&mut session, 50)?;
        let (mut seconds, mut single_seconds, mut ratios) = (f64::INFINITY, f64::INFINITY, Vec::new());
        for round in 0..rounds {
            let Some(single) = single.as_mut() else {
                seconds = seconds.min(time_steps(&mut session, steps)?);
                continue;
            };
            // Alternating which goes first, so neither always follows the other's cache state.
            let (many, one) = if round % 2 == 0 {
                let many = time_steps(&mut session, steps)?;
                (many, time_steps(single, steps)?)
            } else {
                let one = time_steps(single, steps)?;
                (time_steps(&mut session, steps)?, one)
            };
            seconds = seconds.min(many);
            single_seconds = single_seconds.min(one);
            ratios.push(one / many);
        }
        let train_rate = (steps * batch_size) as f64 / seconds;
        ratios.sort_by(f64::total_cmp);
        let median = |r: &[f64]| (r[(r.len() - 1) / 2] + r[r.len() / 2]) / 2.0;
        let comparison = single.is_some().then(|| ((steps * batch_size) as f64 / single_seconds, median(&ratios)));

        let model = session.model().clone();
        let mut ws = Workspace::default();
        let one = one_image.images.slice_axis(Axis(0), (0..1).into());
        for _ in 0..100 {
            model.forward(one, &mut ws)?;
        }
        let mut times: Vec<f64> = (0..1000)
            .map(|_| {
                let t = Instant::now();
                let logits = model.forward(one, &mut ws).map(|l| l[[0, 0]]);
                std::hint::black_box(logits.ok());
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let predict_ms = times[times.len() / 2];
        println!("lenet (this crate), {threads} thread(s), batch {batch_size}:");
        println!("  training   {train_rate:>10.0} examples/s  (fastest of {rounds} rounds of {steps} steps)");
        if let Some((single_rate, median)) = comparison {
            println!(
                "  1 thread   {single_rate:>10.0} examples/s  (fastest of the {rounds} rounds alternating with those)"
            );
            println!(
                "  {threads} threads ÷ 1: {:.2}× (fastest rounds), {median:.2}× (median of the rounds' ratios)",
                train_rate / single_rate
            );
        }
        println!("  predict    {predict_ms:>10.4} ms per image (median of 1,000)");
        if json {
            let against = comparison.map_or(String::new(), |(single_rate, median)| {
                format!(",\"one_thread_examples_per_s\":{single_rate:.1},\"median_speedup\":{median:.3}")
            });
            println!(
                "{{\"peer\":\"lenet\",\"threads\":{threads},\"batch\":{batch_size},\"train_examples_per_s\":{train_rate:.1}{against},\"predict_ms\":{predict_ms:.5}}}"
            );
        }
        Ok(())
    }
}
