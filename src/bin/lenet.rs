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

    use clap::{Parser, Subcommand, ValueEnum};
    use indicatif::{ProgressBar, ProgressStyle};
    use lenet::data::idx::{self, Split};
    use lenet::data::unipen;
    use lenet::model::{Workspace, NUM_CLASSES};
    use lenet::optim::SgdConfig;
    use lenet::train::{evaluate, gather, shuffled_indices, train_epoch, LrSchedule, Recipe, Trainer};
    use lenet::{weights, Error, LeNet5};
    use ndarray::{Array2, Array4, Axis};

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

    #[derive(Subcommand)]
    enum Command {
        /// Train from a fresh seeded initialisation; print test accuracy after every epoch.
        #[command(allow_negative_numbers = true)]
        Train {
            /// Folder holding MNIST's four IDX files (plain or .gz).
            #[arg(long, env = "MNIST_DIR")]
            data: PathBuf,
            /// Passes over the 60,000 training images.
            #[arg(long, default_value_t = 10)]
            epochs: usize,
            /// Images per SGD step.
            #[arg(long, default_value_t = 32)]
            batch_size: usize,
            /// Base learning rate.
            #[arg(long, default_value_t = 0.02)]
            lr: f32,
            /// How the learning rate changes over the run.
            #[arg(long, value_enum, default_value_t = Schedule::Cosine)]
            schedule: Schedule,
            /// SGD momentum.
            #[arg(long, default_value_t = 0.9)]
            momentum: f32,
            /// L2 weight decay.
            #[arg(long, default_value_t = 5e-4)]
            weight_decay: f32,
            /// Seed of the initial weights and of the shuffling.
            #[arg(long, default_value_t = 0)]
            seed: u64,
            /// Where to write the trained weights (safetensors).
            #[arg(long, default_value = "lenet5.safetensors")]
            out: PathBuf,
        },
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
        /// Training throughput and single-image inference time, one thread, on real data.
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
        let cli = Cli::parse();
        let result = match cli.command {
            Command::Train { data, epochs, batch_size, lr, schedule, momentum, weight_decay, seed, out } => {
                let sgd = SgdConfig { learning_rate: lr, momentum, weight_decay };
                let recipe = Recipe { epochs, batch_size, sgd, schedule: schedule.into(), seed };
                train(&data, recipe, &out)
            }
            Command::Eval { weights, unipen: Some(dir), .. } => eval_unipen(&weights, &dir),
            Command::Eval { weights, data: Some(data), .. } => eval(&weights, &data),
            Command::Eval { .. } => Err(Error::InvalidInput("eval needs --data (MNIST) or --unipen".into())),
            Command::Bench { data, steps, rounds, batch_size, json } => bench(&data, steps, rounds, batch_size, json),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    }

    fn train(dir: &Path, recipe: Recipe, out: &Path) -> lenet::Result<()> {
        if recipe.epochs == 0 || recipe.batch_size == 0 {
            return Err(Error::InvalidInput(format!(
                "--epochs and --batch-size must be at least 1, got {} and {}",
                recipe.epochs, recipe.batch_size
            )));
        }
        // Find out now, not after the whole run, that the weights could not be written.
        let folder = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !folder.is_dir() {
            return Err(Error::InvalidInput(format!(
                "--out {}: the folder {} does not exist",
                out.display(),
                folder.display()
            )));
        }
        recipe.sgd.validate()?;
        let train_set = idx::load(dir, Split::Train)?;
        let test_set = idx::load(dir, Split::Test)?;
        let n = train_set.len();
        let mut trainer = Trainer::new(LeNet5::new(recipe.seed), recipe.sgd)?;
        println!(
            "LeNet-5, {} parameters; {n} training and {} test images from {}",
            trainer.model().num_parameters(),
            test_set.len(),
            dir.display()
        );
        let Recipe { epochs, batch_size, sgd, schedule, seed } = recipe;
        println!(
            "SGD: batch {batch_size}, learning rate {} ({schedule:?}), momentum {}, weight decay {}, seed {seed}",
            sgd.learning_rate, sgd.momentum, sgd.weight_decay
        );
        let started = Instant::now();
        for epoch in 0..epochs {
            let bar = ProgressBar::new(n as u64);
            bar.set_style(
                ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("{}/{epochs}", epoch + 1));
            let epoch_start = Instant::now();
            let mut smoothed = None::<f32>;
            let outcome = train_epoch(&mut trainer, &train_set, &recipe, epoch, |report| {
                let s = smoothed.map_or(report.loss, |s| 0.98 * s + 0.02 * report.loss);
                smoothed = Some(s);
                bar.set_position(report.seen as u64);
                if report.step % 20 == 0 {
                    let rate = report.seen as f64 / epoch_start.elapsed().as_secs_f64();
                    bar.set_message(format!("loss {s:.4} lr {:.4} {rate:.0} examples/s", report.learning_rate));
                }
            });
            if let Err(e) = outcome {
                bar.abandon();
                if matches!(e, Error::Diverged(_)) {
                    weights::save(trainer.model(), out)?;
                    eprintln!("the last good weights were saved to {}", out.display());
                }
                return Err(e);
            }
            bar.finish();
            let result = trainer.evaluate(test_set.images.view(), &test_set.labels, 1000)?;
            println!(
                "epoch {}/{epochs}: test accuracy {:.2} % ({}/{}), test loss {:.4}, {:.0} examples/s",
                epoch + 1,
                100.0 * result.accuracy,
                result.correct,
                result.count,
                result.loss,
                n as f64 / epoch_start.elapsed().as_secs_f64()
            );
        }
        weights::save(trainer.model(), out)?;
        println!("trained in {:.1} s; weights written to {}", started.elapsed().as_secs_f64(), out.display());
        Ok(())
    }

    fn eval(weights_path: &Path, dir: &Path) -> lenet::Result<()> {
        let model = weights::load(weights_path)?;
        let test_set = idx::load(dir, Split::Test)?;
        let mut confusion = Array2::<u64>::zeros((NUM_CLASSES, NUM_CLASSES));
        let result = evaluate(
            &model,
            &mut Workspace::default(),
            test_set.images.view(),
            &test_set.labels,
            1000,
            Some(&mut confusion),
        )?;
        println!(
            "{}: test accuracy {:.2} % ({}/{}), loss {:.4}",
            weights_path.display(),
            100.0 * result.accuracy,
            result.correct,
            result.count,
            result.loss
        );
        print_confusion(&confusion);
        Ok(())
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
        let mut confusion = Array2::<u64>::zeros((NUM_CLASSES, NUM_CLASSES));
        let result =
            evaluate(&model, &mut Workspace::default(), set.images.view(), &set.labels, 1000, Some(&mut confusion))?;
        println!(
            "\n{}: UNIPEN accuracy {:.2} % ({}/{}), loss {:.4}",
            weights_path.display(),
            100.0 * result.accuracy,
            result.correct,
            result.count,
            result.loss
        );
        print_confusion(&confusion);
        Ok(())
    }

    /// Per-class accuracy and the confusion matrix (rows: true digit, columns: predicted).
    fn print_confusion(confusion: &Array2<u64>) {
        println!("\nper class:");
        for (digit, row) in confusion.rows().into_iter().enumerate() {
            let total: u64 = row.sum();
            println!("  {digit}: {:6.2} % of {total}", 100.0 * row[digit] as f64 / total.max(1) as f64);
        }
        println!("\nconfusion matrix (rows: true digit, columns: predicted):");
        print!("     ");
        for p in 0..NUM_CLASSES {
            print!("{p:>6}");
        }
        println!();
        for (digit, row) in confusion.rows().into_iter().enumerate() {
            print!("  {digit}: ");
            for v in row {
                print!("{v:>6}");
            }
            println!();
        }
    }

    fn bench(dir: &Path, steps: usize, rounds: usize, batch_size: usize, json: bool) -> lenet::Result<()> {
        if steps == 0 || rounds == 0 || batch_size == 0 {
            return Err(Error::InvalidInput("steps, rounds and batch size must be at least 1".into()));
        }
        let train_set = idx::load(dir, Split::Train)?;
        let mut trainer = Trainer::new(LeNet5::new(0), SgdConfig { learning_rate: 0.01, ..SgdConfig::default() })?;
        let order = shuffled_indices(train_set.len(), 0, 0);
        let mut images = Array4::zeros((batch_size, 1, 28, 28));
        let mut labels = Vec::with_capacity(batch_size);
        let batches: Vec<&[usize]> = order.chunks_exact(batch_size).collect();
        if batches.is_empty() {
            return Err(Error::InvalidInput(format!(
                "--batch-size {batch_size} is larger than the {} training images",
                train_set.len()
            )));
        }
        let mut run = |count: usize, offset: usize| -> lenet::Result<f64> {
            let start = Instant::now();
            for i in 0..count {
                gather(&train_set, batches[(offset + i) % batches.len()], &mut images, &mut labels);
                trainer.train_step(images.view(), &labels)?;
            }
            Ok(start.elapsed().as_secs_f64())
        };
        run(50, 0)?;
        let mut seconds = f64::INFINITY;
        for round in 0..rounds {
            seconds = seconds.min(run(steps, 50 + round * steps)?);
        }
        let train_rate = (steps * batch_size) as f64 / seconds;

        let model = trainer.model().clone();
        let mut ws = Workspace::default();
        let one = train_set.images.slice_axis(Axis(0), (0..1).into());
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
        println!("lenet (this crate), 1 thread, batch {batch_size}:");
        println!("  training   {train_rate:>10.0} examples/s  (fastest of {rounds} rounds of {steps} steps)");
        println!("  predict    {predict_ms:>10.4} ms per image (median of 1,000)");
        if json {
            println!(
                "{{\"peer\":\"lenet\",\"threads\":1,\"batch\":{batch_size},\"train_examples_per_s\":{train_rate:.1},\"predict_ms\":{predict_ms:.5}}}"
            );
        }
        Ok(())
    }
}
