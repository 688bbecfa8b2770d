//! Shared by the native and the wasm tests: the small real-MNIST fixture and golden values.
#![allow(dead_code)]

use lenet::data::idx::{parse_dataset, Dataset};

/// `gz` decompressed: the wasm build's IDX reader takes plain files (the page decompresses with
/// the browser's own gzip decoder), so the tests decompress the committed fixtures themselves.
fn gunzip(gz: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(gz).read_to_end(&mut plain).expect("the committed fixture is gzip");
    plain
}

/// The first 2,500 digits of MNIST's training set (tests/fixtures/mnist-small/README.md).
pub fn small_train() -> Dataset {
    parse_dataset(
        &gunzip(include_bytes!("../fixtures/mnist-small/train-images-idx3-ubyte.gz")),
        &gunzip(include_bytes!("../fixtures/mnist-small/train-labels-idx1-ubyte.gz")),
    )
    .expect("the committed fixture parses")
}

/// The first 500 digits of MNIST's test set, held out from training.
pub fn small_test() -> Dataset {
    parse_dataset(
        &gunzip(include_bytes!("../fixtures/mnist-small/t10k-images-idx3-ubyte.gz")),
        &gunzip(include_bytes!("../fixtures/mnist-small/t10k-labels-idx1-ubyte.gz")),
    )
    .expect("the committed fixture parses")
}

/// Probabilities that `LeNet5::new(0)` gives the first two digits of `small_test()` (a 7 and
/// a 2), as computed natively on x86-64. The native test holds the model to them to 10⁻⁶, the
/// wasm test to 10⁻⁵: the same seed must give the same network everywhere.
pub const SEED0_PROBABILITIES: [[f32; 10]; 2] = [
    [
        6.504087e-2,
        1.8643588e-1,
        6.723722e-2,
        3.0862387e-2,
        1.7085485e-1,
        2.6320046e-1,
        4.112972e-2,
        3.9145432e-2,
        8.1264734e-2,
        5.482844e-2,
    ],
    [
        1.4528029e-2,
        1.7151882e-1,
        9.202022e-2,
        3.179257e-2,
        1.4075725e-1,
        2.7757892e-1,
        2.3589376e-2,
        1.1564007e-1,
        1.0661423e-1,
        2.596054e-2,
    ],
];

/// Holds the fast matrix product to the plain-loop reference for every operand layout the
/// kernels distinguish (plain and transposed A and B, overwrite and accumulate) and for sizes
/// that exercise every tail of their blocked loops. Runs the SIMD128 kernels under wasm and
/// the AVX2 ones natively.
pub fn check_gemm_against_reference() {
    use lenet::gemm::{gemm, gemm_reference};
    use ndarray::Array2;
    let mut seed = 7u32;
    let mut random = |shape: (usize, usize)| {
        Array2::from_shape_fn(shape, |_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed % 2001) as f32 / 1000.0 - 1.0
        })
    };
    // (M, K, N): odd sizes exercise every tail of the blocked loops.
    for (m, k, n) in [(6, 25, 784), (16, 150, 100), (5, 7, 13), (1, 1, 1), (3, 9, 4), (7, 3, 9)] {
        let a = random((m, k));
        let at = random((k, m));
        let b = random((k, n));
        let bt = random((n, k));
        for accumulate in [false, true] {
            let layouts: [(&str, ndarray::ArrayView2<f32>, ndarray::ArrayView2<f32>); 4] = [
                ("A·B", a.view(), b.view()),
                ("Aᵀ·B", at.t(), b.view()),
                ("A·Bᵀ", a.view(), bt.t()),
                ("Aᵀ·Bᵀ", at.t(), bt.t()),
            ];
            for (what, x, y) in layouts {
                let start = random((m, n));
                let (mut fast, mut slow) = (start.clone(), start.clone());
                gemm(x, y, accumulate, fast.view_mut());
                gemm_reference(x, y, accumulate, slow.view_mut());
                let worst = (&fast - &slow).iter().fold(0.0f32, |w, d| w.max(d.abs()));
                assert!(worst <= 1e-4, "{what} ({m}, {k}, {n}) accumulate {accumulate}: largest difference {worst}");
            }
        }
    }
}

/// Holds max-pooling (forward and backward, the 2×2 stride-2 path among them, vectorised by the
/// compiler) to a plain loop over each window, bit for bit: the first maximum in row-major order
/// wins ties, NaN is never greater, so −0 and +0 keep their order and a NaN is passed on only
/// from a window's first pixel. The values hold such ties, negatives and NaN; the sizes include
/// widths of whole groups of four windows and not, and odd ones that leave a row and a column
/// outside every window.
pub fn check_pool_against_reference() {
    use lenet::layers::{MaxPool2d, MaxPool2dCache};
    use ndarray::Array4;
    let mut seed = 11u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let palette = [-1.0f32, -0.0, 0.0, 0.5, 1.0, 2.0, f32::NAN];
    let bits = |a: &Array4<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for (k, s) in [(2, 2), (3, 2), (2, 1)] {
        let pool = MaxPool2d::new(k, s).unwrap();
        for (h, w) in [(28, 28), (10, 10), (16, 16), (9, 9), (8, 17), (2, 2), (3, 5), (4, 18)] {
            if h < k || w < k {
                continue;
            }
            let x = Array4::from_shape_fn((2, 3, h, w), |_| palette[next() as usize % palette.len()]);
            let (mut cache, mut y) = (MaxPool2dCache::default(), Array4::zeros((0, 0, 0, 0)));
            pool.forward(x.view(), &mut cache, &mut y).unwrap();
            let grad = Array4::from_shape_fn(y.raw_dim(), |_| (next() % 2001) as f32 / 1000.0 - 1.0);
            let mut expected_dx = Array4::zeros(x.raw_dim());
            let expected = Array4::from_shape_fn(y.raw_dim(), |(n, c, i, j)| {
                let (mut best, mut at) = (x[[n, c, i * s, j * s]], (i * s, j * s));
                for u in 0..k {
                    for v in 0..k {
                        let value = x[[n, c, i * s + u, j * s + v]];
                        if value > best {
                            (best, at) = (value, (i * s + u, j * s + v));
                        }
                    }
                }
                expected_dx[[n, c, at.0, at.1]] += grad[[n, c, i, j]];
                best
            });
            let what = format!("MaxPool2d({k}, {s}) on {h}×{w}");
            assert_eq!(bits(&y), bits(&expected), "{what}: forward");
            let mut dx = Array4::zeros((0, 0, 0, 0));
            pool.backward(&cache, grad.view(), &mut dx).unwrap();
            assert_eq!(bits(&dx), bits(&expected_dx), "{what}: backward");
        }
    }
}

/// FNV-1a (64-bit) of the bits of the f32 pixels that `Augment::apply` makes of the first eight
/// digits of `small_train()`, one after another from a ChaCha8 generator seeded with 2026, under
/// three fixed settings: every distortion on; every distortion at the end of its range, which
/// moves most sampling positions outside the image and into the clamps; and the affine part
/// alone. Native and wasm tests hold it to [`AUGMENT_HASH`]: the same seed must give the same
/// augmented images everywhere, whichever code path (scalar or SIMD) a target takes.
pub fn augment_hash() -> u64 {
    use lenet::data::augment::Augment;
    use rand::SeedableRng;
    let settings = [
        Augment { translate: 2.5, rotate: 15.0, scale: 0.12, shear: 10.0, elastic_alpha: 30.0, elastic_sigma: 4.5 },
        Augment { translate: 28.0, rotate: 180.0, scale: 0.9, shear: 60.0, elastic_alpha: 200.0, elastic_sigma: 1.0 },
        Augment { translate: 3.0, rotate: 30.0, scale: 0.3, shear: 20.0, elastic_alpha: 0.0, elastic_sigma: 4.0 },
    ];
    let train = small_train();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut dst = vec![0.0f32; 784];
    for settings in &settings {
        for image in train.images.as_slice().unwrap().chunks_exact(784).take(8) {
            let bytes: Vec<u8> = image.iter().map(|&v| (v * 255.0).round() as u8).collect();
            settings.apply(&bytes, &mut dst, &mut rng);
            for byte in dst.iter().flat_map(|v| v.to_bits().to_le_bytes()) {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    }
    hash
}

/// [`augment_hash`] as computed natively on x86-64.
pub const AUGMENT_HASH: u64 = 0xd5c4_f31e_a329_8346;

/// Strokes as the page sends them to `preprocess_strokes`: `xy` = x0, y0, x1, y1, … in CSS
/// pixels, `ends[i]` = points up to and including stroke `i`. A 4 in two strokes on a 280 px
/// pad, with fractional coordinates, plus a tap far from it (dropped as a stray mark).
pub fn four_strokes() -> (Vec<f32>, Vec<u32>) {
    let first = [[150.25, 40.5], [120.75, 110.0], [90.5, 170.25], [170.0, 168.5], [201.125, 166.0]];
    let second = [[160.5, 90.0], [158.0, 160.75], [157.25, 230.5], [156.0, 251.0]];
    let tap = [[20.0, 260.0]];
    let mut xy = Vec::new();
    let mut ends = Vec::new();
    for stroke in [&first[..], &second[..], &tap[..]] {
        for p in stroke {
            xy.extend_from_slice(p);
        }
        ends.push((xy.len() / 2) as u32);
    }
    (xy, ends)
}

/// FNV-1a (64 bits) of the little-endian bytes of `values`: a fingerprint of an image.
pub fn fnv1a(values: &[f32]) -> u64 {
    values
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// `fnv1a` of the image `four_strokes()` renders into on a 280 × 280 pad, natively: the wasm
/// test holds `preprocess_strokes` to the same bytes.
pub const FOUR_STROKES_FNV1A: u64 = 0x7cef_e22b_329d_dd43;
