//! The fuzz targets' properties, checked without cargo-fuzz: every saved crash input and every
//! seed replays through the targets' own code (`tests/fuzz/src/lib.rs`), and proptest drives
//! the same code with generated inputs, so the plain `cargo test` checks them on any toolchain.
//!
//! `LENET_WRITE_FUZZ_SEEDS=1 cargo test --test fuzz_regressions` rewrites the seed corpora under
//! `tests/fuzz/seeds/` from the MNIST fixture and a fresh model.
#![cfg(not(target_arch = "wasm32"))]

#[path = "fuzz/src/lib.rs"]
mod harness;

use std::io::Read;
use std::path::{Path, PathBuf};

use lenet::{weights, LeNet5};
use proptest::prelude::*;

const FUZZ_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz");

/// The target functions by name, with the start of the message their errors must carry.
type Target = fn(&[u8]) -> Result<(), lenet::Error>;
const TARGETS: [(&str, Target, &str); 4] = [
    ("idx", harness::idx, "IDX file "),
    ("safetensors", harness::safetensors, "weights file: "),
    ("preprocess", |data| harness::preprocess(data).map(drop), "invalid input: "),
    ("unipen", harness::unipen, "UNIPEN file "),
];

/// The files in `tests/fuzz/<kind>/<target>/`, sorted; none if the folder does not exist.
fn files(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(FUZZ_DIR).join(kind).join(target);
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.map(|e| e.expect("a readable folder").path()).collect(),
        Err(_) => Vec::new(),
    };
    paths.retain(|p| p.is_file() && p.file_name().is_some_and(|n| !n.to_string_lossy().starts_with('.')));
    paths.sort();
    paths
}

#[test]
fn every_saved_crash_input_is_now_a_clear_error() {
    let mut replayed = 0;
    for (target, run, prefix) in TARGETS {
        for path in files("regressions", target) {
            let data = std::fs::read(&path).unwrap();
            let message = match run(&data) {
                Ok(()) => panic!("{}: accepted, expected an error", path.display()),
                Err(error) => error.to_string(),
            };
            assert!(message.starts_with(prefix) && message.len() > prefix.len() + 10, "{}: {message}", path.display());
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no regression input found under {FUZZ_DIR}/regressions");
}

#[test]
fn the_offsets_that_overflowed_the_safetensors_crate_are_named() {
    let path = Path::new(FUZZ_DIR).join("regressions/safetensors/offsets-sum-to-usize-max");
    let message = harness::safetensors(&std::fs::read(path).unwrap()).unwrap_err().to_string();
    assert!(
        message.contains("the header's tensors claim 18446744073709551608 bytes of data, the file holds 0"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------
// Seeds

/// Seeds whose name starts with this are inputs the entry point must reject.
const REJECTED_SEED: &str = "reject-";

/// The seed corpora: (target, file name, bytes).
fn make_seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let gunzip = |gz: &[u8]| {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz).read_to_end(&mut out).expect("the fixture is gzip");
        out
    };
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist-small");
    let images = gunzip(&std::fs::read(fixture.join("t10k-images-idx3-ubyte.gz")).unwrap());
    let labels = gunzip(&std::fs::read(fixture.join("t10k-labels-idx1-ubyte.gz")).unwrap());
    // The first two digits, headers rewritten to claim two.
    let mut images = images[..16 + 2 * 784].to_vec();
    images[4..8].copy_from_slice(&2u32.to_be_bytes());
    let mut labels = labels[..8 + 2].to_vec();
    labels[4..8].copy_from_slice(&2u32.to_be_bytes());
    let prefixed = |mode: u8, parts: &[&[u8]]| {
        let mut seed = vec![mode];
        parts.iter().for_each(|p| seed.extend_from_slice(p));
        seed
    };
    let split = (images.len() as u16).to_le_bytes();

    let model = LeNet5::new(0);
    let file = weights::to_safetensors(&model).unwrap();
    let header_len = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header = &file[8..8 + header_len];
    let small = harness::with_header(br#"{"conv1.bias":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}}"#, &[0; 24]);

    // A black bar on white, and a ring of ink, in each of the four modes.
    let canvas = |width: usize, height: usize| {
        let mut rgba = Vec::with_capacity(4 * width * height);
        for row in 0..height {
            for col in 0..width {
                let ink = (width / 3..width / 2).contains(&col) && (2..height - 2).contains(&row);
                rgba.extend_from_slice(if ink { &[0, 0, 0, 255] } else { &[255, 255, 255, 255] });
            }
        }
        rgba
    };
    let ink = |width: usize, height: usize| {
        let mut values = Vec::with_capacity(4 * width * height);
        for row in 0..height {
            for col in 0..width {
                let (x, y) = (col as f32 - width as f32 / 2.0, row as f32 - height as f32 / 2.0);
                let r = (x * x + y * y).sqrt();
                let v = (1.0 - (r - width as f32 / 3.0).abs() / 2.0).clamp(0.0, 1.0);
                values.extend_from_slice(&v.to_le_bytes());
            }
        }
        values
    };
    let sides = |w: u16, h: u16| [w.to_le_bytes(), h.to_le_bytes()].concat();

    // The hand-written UNIPEN fixture as NUL-separated files, its include paths renumbered.
    let unipen = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/unipen");
    let text = |path: &str| std::fs::read_to_string(unipen.join(path)).unwrap();
    let files = |parts: &[String]| parts.join("\0").into_bytes();
    let w1 = files(&[
        text("data/1a/xyz/w1.dat").replace("xyz/xyz.doc", "1").replace("xyz/data/w1.dat", "2"),
        text("include/xyz/xyz.doc"),
        text("include/xyz/data/w1.dat"),
    ]);
    let w2 = files(&[
        text("data/1a/xyz/w2.dat").replace("xyz/data/w2.dat", "1"),
        text("include/xyz/data/w2.dat").replace("xyz/data/w2-pen.dat", "2"),
        text("include/xyz/data/w2-pen.dat"),
    ]);
    let cycle = files(&[".INCLUDE 1\n".into(), ".PEN_DOWN\n1 2\n.INCLUDE 1\n".into()]);

    vec![
        ("idx", "images-2", prefixed(0, &[&images])),
        ("idx", "labels-2", prefixed(1, &[&labels])),
        ("idx", "dataset-2", prefixed(2, &[&split, &images, &labels])),
        ("idx", "images-2-gzip-wrapped", prefixed(harness::IDX_GZIP, &[&images])),
        ("idx", "labels-2-gzipped", prefixed(1, &[&harness::gzip(&labels)])),
        ("idx", "dataset-2-gzip-wrapped", prefixed(harness::IDX_GZIP | 2, &[&split, &images, &labels])),
        ("safetensors", "lenet5-header", prefixed(harness::WEIGHTS_HEADER, &[header])),
        (
            "safetensors",
            "lenet5-poke-first-weight",
            prefixed(harness::WEIGHTS_POKE, &[&[0; 4], &file[file.len() - 4 * 61_706..][..4], header]),
        ),
        ("safetensors", "reject-one-tensor", prefixed(harness::WEIGHTS_RAW, &[&small])),
        ("preprocess", "canvas-16-wide-bar", prefixed(harness::CANVAS_FITTED, &[&[16], &canvas(16, 16)])),
        (
            "preprocess",
            "canvas-claimed-12x10-bar",
            prefixed(harness::CANVAS_CLAIMED, &[&sides(12, 10), &canvas(12, 10)]),
        ),
        ("preprocess", "ink-12-wide-ring", prefixed(harness::INK_FITTED, &[&[12], &ink(12, 12)])),
        ("preprocess", "ink-claimed-14x9-ring", prefixed(harness::INK_CLAIMED, &[&sides(14, 9), &ink(14, 9)])),
        ("unipen", "fixture-w1", w1),
        ("unipen", "fixture-w2-nested", w2),
        ("unipen", "reject-include-cycle", cycle),
    ]
}

#[test]
fn the_seeds_exist_and_parse() {
    if std::env::var_os("LENET_WRITE_FUZZ_SEEDS").is_some() {
        for (target, name, bytes) in make_seeds() {
            let dir = Path::new(FUZZ_DIR).join("seeds").join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    for (target, run, _) in TARGETS {
        let seeds = files("seeds", target);
        assert!(!seeds.is_empty(), "no seed for {target}: run with LENET_WRITE_FUZZ_SEEDS=1");
        for path in seeds {
            let result = run(&std::fs::read(&path).unwrap());
            let name = path.file_name().unwrap().to_string_lossy();
            assert_eq!(result.is_err(), name.starts_with(REJECTED_SEED), "{}: {result:?}", path.display());
        }
    }
    // The canvases and ink images hold a digit, not just a valid size.
    for path in files("seeds", "preprocess") {
        let digit = harness::preprocess(&std::fs::read(&path).unwrap()).unwrap();
        assert!(digit.is_some(), "{}: no digit found", path.display());
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

/// An IDX file in any of the reader's modes: a header of the right magic claiming a small or a
/// huge count (and, for images, sides near 28), followed by a body of about the claimed size.
fn idx_input() -> impl Strategy<Value = Vec<u8>> {
    let count = prop_oneof![4 => 0u32..4, 1 => any::<u32>(), 1 => Just(1_000_000u32), 1 => Just(1_000_001u32)];
    let side = prop_oneof![4 => Just(28u32), 1 => 26u32..30, 1 => any::<u32>()];
    (0u8..8, count, side.clone(), side, -3isize..3, proptest::collection::vec(any::<u8>(), 0..3200), 0u16..4000)
        .prop_map(|(mode, count, rows, cols, slack, fill, split)| {
            let images_file = |count: u32| {
                let mut f: Vec<u8> = [0x0803u32, count, rows, cols].iter().flat_map(|w| w.to_be_bytes()).collect();
                let body = (count.min(4) as usize * 784).saturating_add_signed(slack);
                f.extend((0..body).map(|i| fill.get(i).copied().unwrap_or(0)));
                f
            };
            let labels_file = |count: u32| {
                let mut f: Vec<u8> = [0x0801u32, count].iter().flat_map(|w| w.to_be_bytes()).collect();
                let body = (count.min(4) as usize).saturating_add_signed(slack);
                f.extend((0..body).map(|i| fill.get(i).map_or(0, |b| b % 12)));
                f
            };
            let mut input = vec![mode];
            match mode & 0b11 {
                0 => input.extend(images_file(count)),
                1 => input.extend(labels_file(count)),
                _ => {
                    let images = images_file(count);
                    let split = if split < 3000 { images.len() as u16 } else { split };
                    input.extend(split.to_le_bytes());
                    input.extend(images);
                    input.extend(labels_file(count));
                }
            }
            input
        })
}

/// A header for real LeNet-5 tensor data, with tensors drawn from the real names and a few
/// others, shapes and offsets small, real or enormous, and sometimes a corrupted byte.
fn safetensors_header() -> impl Strategy<Value = Vec<u8>> {
    let model = LeNet5::new(0);
    let names: Vec<String> = [
        "conv1.weight",
        "conv1.bias",
        "conv2.weight",
        "conv2.bias",
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
        "fc3.weight",
        "fc3.bias",
        "extra",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let real_shapes: Vec<Vec<u64>> =
        model.parameter_shapes().iter().map(|s| s.iter().map(|&d| d as u64).collect()).collect();
    let dim = prop_oneof![4 => 0u64..130, 1 => any::<u64>(), 1 => Just(1u64 << 40)];
    let entry = (
        0..names.len(),
        prop_oneof![5 => Just("F32"), 1 => Just("F16"), 1 => Just("U8")],
        any::<bool>(),
        proptest::collection::vec(dim, 0..4),
        prop_oneof![3 => Just(None), 1 => any::<u64>().prop_map(Some)],
    );
    let metadata = prop_oneof![
        Just(String::new()),
        Just(r#""__metadata__":{"input_mean":"0.5","input_std":"0.25"},"#.to_string()),
        Just(r#""__metadata__":{"input_std":"-1"},"#.to_string()),
        Just(r#""__metadata__":{"input_mean":"NaN"},"#.to_string())
    ];
    (proptest::collection::vec(entry, 0..12), metadata, any::<Option<(usize, u8)>>()).prop_map(
        move |(entries, metadata, corrupt)| {
            let mut offset: u64 = 0;
            let tensors: Vec<String> = entries
                .iter()
                .map(|(name, dtype, real, dims, end)| {
                    let shape =
                        if *real && *name < real_shapes.len() { real_shapes[*name].clone() } else { dims.clone() };
                    let bytes = shape.iter().fold(4u64, |n, &d| n.saturating_mul(d));
                    let start = offset;
                    offset = end.unwrap_or(start.saturating_add(bytes));
                    format!(
                        r#""{}":{{"dtype":"{dtype}","shape":{shape:?},"data_offsets":[{start},{offset}]}}"#,
                        names[*name]
                    )
                })
                .collect();
            let mut header = format!("{{{metadata}{}}}", tensors.join(",")).into_bytes();
            if let Some((at, byte)) = corrupt {
                let at = at % header.len();
                header[at] = byte;
            }
            header
        },
    )
}

/// Bytes for the preprocessing target, sizes fitted or claimed, pixels random or mostly one
/// value with a few random ones (so that some inputs hold a digit and some do not).
fn preprocess_input() -> impl Strategy<Value = Vec<u8>> {
    let pixels = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2400),
        (any::<u8>(), proptest::collection::vec((0usize..2400, any::<u8>()), 0..200)).prop_map(|(base, pokes)| {
            let mut v = vec![base; 2400];
            pokes.into_iter().for_each(|(i, b)| v[i] = b);
            v
        }),
    ];
    (
        0u8..4,
        prop_oneof![3 => 1u16..40, 1 => any::<u16>(), 1 => Just(4096u16), 1 => Just(4097u16)],
        prop_oneof![3 => 1u16..40, 1 => any::<u16>()],
        pixels,
    )
        .prop_map(|(mode, width, height, pixels)| {
            let mut input = vec![mode];
            if mode == harness::CANVAS_FITTED || mode == harness::INK_FITTED {
                input.push(width as u8);
            } else {
                input.extend(width.to_le_bytes());
                input.extend(height.to_le_bytes());
            }
            input.extend(pixels);
            input
        })
}

/// A UNIPEN segment file and an include, from lines that are mostly well-formed: pen blocks
/// with points (sometimes huge, odd or missing), segments with every delineation form and
/// random numbers, resolutions, includes (of itself too: a cycle), and junk.
fn unipen_input() -> impl Strategy<Value = Vec<u8>> {
    let number = prop_oneof![4 => 0u64..12, 1 => any::<u64>()];
    let mark = (number.clone(), proptest::option::of(number.clone()))
        .prop_map(|(c, p)| p.map_or(c.to_string(), |p| format!("{c}:{p}")));
    let line = prop_oneof![
        3 => Just(".PEN_DOWN".to_string()),
        1 => Just(".PEN_UP".to_string()),
        6 => (-2000i32..2000, -2000i32..2000).prop_map(|(x, y)| format!("{x} {y}")),
        1 => Just("1e39 0".to_string()),
        1 => Just("7".to_string()),
        2 => (mark.clone(), proptest::option::of(mark), 0u8..12).prop_map(|(a, b, label)| {
            let range = b.map_or(a.clone(), |b| format!("{a}-{b}"));
            format!(".SEGMENT CHARACTER {range} ? \"{label}\"")
        }),
        1 => (number, 0u8..4).prop_map(|(v, k)| {
            let key = [".X_POINTS_PER_INCH", ".Y_POINTS_PER_MM", ".COORD Y X", ".WRITER_ID w"][k as usize];
            if k >= 2 { key.to_string() } else { format!("{key} {v}") }
        }),
        1 => (1u8..3).prop_map(|k| format!(".INCLUDE {k}")),
        1 => "[ -~]{0,20}",
    ];
    (proptest::collection::vec(line.clone(), 0..40), proptest::collection::vec(line, 0..40))
        .prop_map(|(main, include)| format!("{}\0{}", main.join("\n"), include.join("\n")).into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn unipen_on_generated_files(input in unipen_input()) {
        let _ = harness::unipen(&input);
    }

    #[test]
    fn unipen_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = harness::unipen(&bytes);
    }

    #[test]
    fn idx_on_arbitrary_bytes(mode in 0u8..8, bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let mut input = vec![mode];
        input.extend(bytes);
        let _ = harness::idx(&input);
    }

    #[test]
    fn idx_on_near_valid_files(input in idx_input()) {
        let _ = harness::idx(&input);
    }

    #[test]
    fn safetensors_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = harness::safetensors(&bytes);
    }

    #[test]
    fn safetensors_on_generated_headers(header in safetensors_header(), poke in any::<Option<([u8; 4], [u8; 4])>>()) {
        let input = match poke {
            None => [&[harness::WEIGHTS_HEADER][..], &header].concat(),
            Some((index, bits)) => [&[harness::WEIGHTS_POKE][..], &index, &bits, &header].concat(),
        };
        let _ = harness::safetensors(&input);
    }

    #[test]
    fn preprocess_on_generated_canvases(input in preprocess_input()) {
        let _ = harness::preprocess(&input);
    }
}
