//! Criterion benchmarks of the native training step and inference, on real digits from
//! `tests/fixtures/mnist-small` (`cargo bench`). For the side-by-side figure with PyTorch, see
//! `tests/pytorch/bench.sh`; for the browser, `.ci/bench`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use lenet::data::augment::Augment;
use lenet::data::idx::parse_dataset;
use lenet::explain::Explainer;
use lenet::model::Workspace;
use lenet::optim::OptimizerConfig;
use lenet::session::{Session, Settings};
use lenet::LeNet5;
use ndarray::s;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Times `trainer` stepping on consecutive batches of 64 from `data`.
fn train_batches(b: &mut criterion::Bencher, trainer: &mut Session, data: &lenet::data::idx::Dataset) {
    let mut offset = 0;
    b.iter_batched(
        || {
            offset = (offset + 64) % (data.len() - 64);
            offset
        },
        |start| {
            trainer
                .train_batch(data.images.slice(s![start..start + 64, .., .., ..]), &data.labels[start..start + 64])
                .unwrap()
                .loss
        },
        BatchSize::SmallInput,
    )
}

fn benches(c: &mut Criterion) {
    let data = parse_dataset(
        include_bytes!("../fixtures/mnist-small/train-images-idx3-ubyte.gz"),
        include_bytes!("../fixtures/mnist-small/train-labels-idx1-ubyte.gz"),
    )
    .expect("the committed fixture parses");

    let mut group = c.benchmark_group("train_step");
    group.throughput(Throughput::Elements(64));
    let config = OptimizerConfig { learning_rate: 0.01, ..OptimizerConfig::default() };
    let mut trainer = Session::with_model(LeNet5::new(0), Settings::manual(config)).unwrap();
    group.bench_function("batch 64", |b| train_batches(b, &mut trainer, &data));
    group.finish();

    // The same step in shards of 16 (the crate's recipe) on one and on two threads: the
    // shards' gradients are summed in shard order either way, so only the time differs.
    let mut group = c.benchmark_group("train_step_threads");
    group.throughput(Throughput::Elements(64));
    for threads in [1, 2] {
        let settings = Settings { shard_size: 16, ..Settings::manual(config) };
        let mut trainer = Session::with_model(LeNet5::new(0), settings).unwrap();
        trainer.set_threads(threads).unwrap();
        group.bench_function(format!("batch 64, shards of 16, {threads} thread(s)"), |b| {
            train_batches(b, &mut trainer, &data)
        });
    }
    group.finish();

    // What augmentation adds to each training step of batch 64 (the default settings).
    let bytes: Vec<u8> = data.images.iter().map(|&v| (v * 255.0).round() as u8).collect();
    let augment = Augment::default();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut batch = vec![0.0f32; 64 * 784];
    let mut offset = 0;
    let mut group = c.benchmark_group("augment");
    group.throughput(Throughput::Elements(64));
    group.bench_function("augment 64 images", |b| {
        b.iter(|| {
            offset = (offset + 64) % (data.len() - 64);
            for (i, dst) in batch.chunks_exact_mut(784).enumerate() {
                let image = offset + i;
                augment.apply(&bytes[image * 784..(image + 1) * 784], dst, &mut rng);
            }
            batch[0]
        })
    });
    group.finish();

    let model = LeNet5::new(0);
    let mut workspace = Workspace::default();
    let mut group = c.benchmark_group("inference");
    group.throughput(Throughput::Elements(1));
    let one = data.images.slice(s![0..1, .., .., ..]);
    group.bench_function("one image", |b| b.iter(|| model.forward(one, &mut workspace).unwrap()[[0, 0]]));
    group.throughput(Throughput::Elements(1000));
    let many = data.images.slice(s![0..1000, .., .., ..]);
    group.bench_function("1,000 images in batches of 16", |b| {
        b.iter(|| {
            for start in (0..1000).step_by(16) {
                let end = (start + 16).min(1000);
                model.forward(many.slice(s![start..end, .., .., ..]), &mut workspace).unwrap();
            }
        })
    });
    group.finish();

    // One update of the page's look inside the network: every feature map and the saliency.
    let mut explainer = Explainer::new();
    let image = data.images.as_slice().expect("standard layout");
    let image = &image[..784];
    let mut group = c.benchmark_group("explain");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one image, maps and saliency", |b| {
        b.iter(|| explainer.explain(&model, image, None).unwrap().1.class)
    });
    group.finish();
}

criterion_group!(lenet_benches, benches);
criterion_main!(lenet_benches);
