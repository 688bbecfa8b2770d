//! Augmentation on real digits: the same seed gives the same images, bit for bit, as the
//! recorded hash (which the wasm suite checks too).

mod common;

#[test]
fn a_fixed_seed_gives_the_recorded_augmented_images() {
    let hash = common::augment_hash();
    assert_eq!(hash, common::AUGMENT_HASH, "got {hash:#018x}");
}
