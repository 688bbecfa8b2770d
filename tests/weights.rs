//! What a person sees when the file given as weights is not one: a Git LFS pointer, an HTML
//! page, metadata that is not string to string, a file too large to be LeNet-5's weights.
#![cfg(not(target_arch = "wasm32"))]

use lenet::weights::{self, MAX_HEADER_LEN, MAX_WEIGHTS_FILE_BYTES};
use lenet::{Error, LeNet5};

/// The message of the [`Error::Weights`] that loading `bytes` gives.
fn weights_error(bytes: &[u8]) -> String {
    match weights::from_safetensors(bytes) {
        Err(Error::Weights(message)) => message,
        other => panic!("expected Error::Weights, got {other:?}"),
    }
}

/// A real model's file with its JSON header replaced by `edit(header)`.
fn with_header(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let bytes = weights::to_safetensors(&LeNet5::new(5)).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    edit(&mut header);
    let json = serde_json::to_vec(&header).unwrap();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[8 + len..]);
    out
}

const LFS_POINTER: &str = "version https://git-lfs.github.com/spec/v1\n\
    oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n\
    size 247640\n";

#[test]
fn a_git_lfs_pointer_says_so_and_what_to_run() {
    let message = weights_error(LFS_POINTER.as_bytes());
    assert_eq!(
        message,
        "the file is a Git LFS pointer, not the weights: run `git lfs pull` in the repository it came from to fetch them"
    );
}

#[test]
fn loading_a_pointer_from_disk_names_the_path() {
    let path = std::env::temp_dir().join(format!("lenet-lfs-pointer-{}.safetensors", std::process::id()));
    std::fs::write(&path, LFS_POINTER).unwrap();
    let result = weights::load(&path);
    std::fs::remove_file(&path).unwrap();
    let message = result.unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("weights file: {}: the file is a Git LFS pointer", path.display())),
        "{message}"
    );
    assert!(message.contains("run `git lfs pull`"), "{message}");
}

#[test]
fn an_html_page_says_so_and_what_to_check() {
    let pages: [&[u8]; 7] = [
        b"<!DOCTYPE html>\n<html lang=\"en\"><head><title>lenet</title></head></html>",
        b"<!doctype html><meta charset=utf-8>",
        b"\xEF\xBB\xBF  \r\n\t<HTML>\n<body>404</body></HTML>",
        b"<html>",
        b"\n\n<head>\n<meta charset=\"utf-8\">",
        b"<!-- served by the dev server -->\n<!DOCTYPE html>",
        b"<Body onload=x()>",
    ];
    for page in pages {
        let message = weights_error(page);
        assert!(
            message.starts_with("the file is an HTML page, not a weights file: check the URL"),
            "{:?}: {message}",
            String::from_utf8_lossy(page)
        );
        assert!(message.contains("index page"), "{message}");
    }
}

#[test]
fn text_that_only_resembles_html_is_not_called_html() {
    for text in [b"<header>not a page</header>".as_slice(), b"<htmlx>", b"html", b"<!doctype xml>"] {
        let message = weights_error(text);
        assert!(!message.contains("HTML"), "{:?}: {message}", String::from_utf8_lossy(text));
        assert!(message.starts_with("not a valid safetensors file"), "{message}");
    }
}

#[test]
fn metadata_that_is_not_string_to_string_names_the_key() {
    let number = with_header(|h| h["__metadata__"]["input_mean"] = serde_json::json!(0.1307));
    assert_eq!(
        weights_error(&number),
        "metadata `input_mean` is a number (0.1307), but safetensors metadata maps strings to strings: write it as a string"
    );

    let nested = with_header(|h| h["__metadata__"]["training"] = serde_json::json!({ "epochs": 3 }));
    assert_eq!(
        weights_error(&nested),
        "metadata `training` is an object ({\"epochs\":3}), but safetensors metadata maps strings to strings: write it as a string"
    );

    let flag = with_header(|h| h["__metadata__"]["normalised"] = serde_json::json!(true));
    assert!(weights_error(&flag).starts_with("metadata `normalised` is a boolean (true)"));

    let list = with_header(|h| h["__metadata__"] = serde_json::json!(["pt"]));
    assert_eq!(
        weights_error(&list),
        "`__metadata__` is an array, but safetensors metadata is an object mapping strings to strings"
    );

    // A long value is shortened in the message.
    let long = with_header(|h| h["__metadata__"]["notes"] = serde_json::Value::from(vec![1; 500]));
    let message = weights_error(&long);
    assert!(message.starts_with("metadata `notes` is an array ([1,1,1,"), "{message}");
    assert!(message.len() < 200, "{} bytes: {message}", message.len());

    // The same files with the values as strings load; `null` metadata reads as none.
    let strings = with_header(|h| h["__metadata__"]["training"] = serde_json::json!("{\"epochs\":3}"));
    assert!(weights::from_safetensors(&strings).is_ok());
    let null = with_header(|h| h["__metadata__"] = serde_json::Value::Null);
    assert!(weights::from_safetensors(&null).is_ok());
}

#[test]
fn max_weights_file_bytes_is_the_largest_valid_file() {
    let model = LeNet5::new(6);
    let bytes = weights::to_safetensors(&model).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let data = &bytes[8 + len..];
    assert_eq!(data.len(), model.num_parameters() * 4);

    // The file's own header padded (JSON allows trailing spaces) to the longest accepted:
    // the largest file that loads, exactly the bound.
    let mut header = bytes[8..8 + len].to_vec();
    header.resize(MAX_HEADER_LEN, b' ');
    let mut largest = (header.len() as u64).to_le_bytes().to_vec();
    largest.extend_from_slice(&header);
    largest.extend_from_slice(data);
    assert_eq!(largest.len(), MAX_WEIGHTS_FILE_BYTES);
    assert_eq!(weights::from_safetensors(&largest).unwrap(), model);

    // One byte more, wherever it goes, cannot be valid: refused up front, both sizes named.
    largest.push(0);
    assert_eq!(
        weights_error(&largest),
        format!(
            "the file is {} bytes, larger than any LeNet-5 weights file ({MAX_WEIGHTS_FILE_BYTES} bytes at most: \
             a header of up to {MAX_HEADER_LEN} bytes and 61,706 f32 parameters)",
            MAX_WEIGHTS_FILE_BYTES + 1
        )
    );
    // A bigger header is refused by the header bound itself.
    let mut header = bytes[8..8 + len].to_vec();
    header.resize(MAX_HEADER_LEN + 1, b' ');
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&header);
    assert!(weights_error(&file).contains("more than the 1048576 accepted"));
}

#[test]
fn a_large_file_of_anything_is_refused_by_its_size() {
    let big = vec![0x42u8; 8 << 20];
    let message = weights_error(&big);
    assert!(message.starts_with(&format!("the file is {} bytes, larger than any LeNet-5 weights file", 8 << 20)));
    assert!(message.contains(&format!("({MAX_WEIGHTS_FILE_BYTES} bytes at most")));
}

#[test]
fn a_large_html_page_is_still_called_an_html_page() {
    let mut page = b"<!DOCTYPE html><html><body>".to_vec();
    page.resize(MAX_WEIGHTS_FILE_BYTES * 2, b'x');
    assert!(weights_error(&page).starts_with("the file is an HTML page"));
}

#[test]
fn the_writer_gives_the_shipped_file_back_byte_for_byte() {
    // The shipped weights were written by the same rules (sorted keys, data in name order,
    // 8-byte alignment): reading and writing them again must change nothing.
    let shipped = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/www/public/lenet5-mnist.safetensors")).unwrap();
    let model = weights::from_safetensors(&shipped).unwrap();
    assert_eq!(weights::to_safetensors(&model).unwrap(), shipped);
}

#[test]
fn files_written_here_load_in_the_reference_implementation_and_back() {
    let model = LeNet5::new(4);
    let bytes = weights::to_safetensors(&model).unwrap();
    let reference = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensor = reference.tensor("fc3.bias").unwrap();
    assert_eq!(tensor.dtype(), safetensors::Dtype::F32);
    assert_eq!(tensor.shape(), [10]);
    let values: Vec<f32> = tensor.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(values, model.parameters()[9]);
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(metadata.metadata().as_ref().unwrap()["architecture"], "LeNet-5");

    // The reference writer's file (metadata in hash order, unsorted) loads here to the same model.
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = lenet::model::PARAMETER_NAMES
        .iter()
        .zip(model.parameter_shapes())
        .zip(model.parameters())
        .map(|((n, s), t)| (n.to_string(), s, t.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(&str, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(n, s, b)| {
            (n.as_str(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())
        })
        .collect();
    let metadata = std::collections::HashMap::from([
        ("input_mean".to_string(), model.input_mean.to_string()),
        ("input_std".to_string(), model.input_std.to_string()),
        ("format".to_string(), "pt".to_string()),
    ]);
    let theirs = safetensors::serialize(views, Some(metadata)).unwrap();
    assert_eq!(weights::from_safetensors(&theirs).unwrap(), model);
}

#[test]
fn headers_listing_unknown_dtypes_or_too_many_tensors_are_named() {
    let dtype = with_header(|h| h["conv1.bias"]["dtype"] = serde_json::json!("C64"));
    let message = weights_error(&dtype);
    assert!(message.contains("tensor `conv1.bias` has dtype \"C64\", not one of BOOL"), "{message}");

    // 65 empty tensors and no metadata: one more than any file here can hold.
    let entries: Vec<String> =
        (0..65).map(|i| format!(r#""t{i}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}"#)).collect();
    let header = format!("{{{}}}", entries.join(","));
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    let message = weights_error(&file);
    assert!(message.contains("it lists 65 tensors, more than the 64"), "{message}");
}

#[test]
fn normalisation_that_would_overflow_the_network_is_refused() {
    // 1 / 1e-40 overflows f32; a mean of 3e38 overflows the first layer: every logit was NaN.
    for (mean, std) in [("0.1307", "1e-40"), ("3e38", "0.01")] {
        let file = with_header(|h| {
            h["__metadata__"]["input_mean"] = serde_json::json!(mean);
            h["__metadata__"]["input_std"] = serde_json::json!(std);
        });
        let message = weights_error(&file);
        let expected =
            format!("metadata input_mean {mean} and input_std {std} would scale pixels in [0, 1] beyond ±10000");
        assert_eq!(message, expected.replace("3e38", "3e+38"));
    }
    // A wide but usable normalisation loads: pixels reach ±1000.
    let wide = with_header(|h| h["__metadata__"]["input_std"] = serde_json::json!("0.001"));
    let model = weights::from_safetensors(&wide).unwrap();
    assert_eq!(model.input_std, 0.001);
    let logits = model.logits(ndarray::Array4::ones((1, 1, 28, 28)).view()).unwrap();
    assert!(logits.iter().all(|v| v.is_finite()));
}

#[test]
fn weights_beyond_what_training_allows_are_refused_by_tensor_and_index() {
    let mut model = LeNet5::new(5);
    model.fc3.weight[[0, 5]] = 3e38;
    let message = weights_error(&weights::to_safetensors(&model).unwrap());
    assert_eq!(
        message,
        "tensor `fc3.weight` holds 3e+38 at flat index 5, larger in magnitude than 10000, the most training allows \
         (trained LeNet-5 weights stay below 1): the network it describes has diverged"
    );
    model.fc3.weight[[0, 5]] = -1e4;
    assert!(weights::from_safetensors(&weights::to_safetensors(&model).unwrap()).is_ok(), "10000 itself is allowed");
}
