//! A look inside the network for one drawing: every layer's feature maps, the learned filters
//! and a saliency map, all computed with the model's own forward and backward passes.
//!
//! Feature maps are the activations of [`LeNet5::forward`], copied out as they are (the way
//! Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014, look at
//! a trained network layer by layer). The saliency map is the gradient of one class's logit
//! with respect to the input pixels (Simonyan, Vedaldi and Zisserman, "Deep Inside
//! Convolutional Networks: Visualising Image Classification Models and Saliency Maps", ICLR
//! workshop 2014), computed by [`LeNet5`]'s backward pass; gradient × input (Shrikumar,
//! Greenside, Shcherbina and Kundaje, "Not Just a Black Box", arXiv:1605.01713, 2016) keeps only
//! where there is ink, which is what a reader of the drawing can point at.

use ndarray::ArrayView4;

use crate::error::{shape_error, Error, Result};
use crate::model::{Gradients, Workspace, IMAGE_PIXELS, IMAGE_SIDE, NUM_CLASSES};
use crate::train::argmax;
use crate::LeNet5;

/// Everything the page shows for one image: the input and every layer's output, each flattened
/// row-major (channel, row, column) from the shape given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Activations {
    /// `(28, 28)`: the image as given, pixels in `[0, 1]` (before the model's normalisation).
    pub input: Vec<f32>,
    /// `(6, 28, 28)`: conv1's feature maps after ReLU.
    pub conv1: Vec<f32>,
    /// `(6, 14, 14)`: conv1's maps after 2×2 max-pooling.
    pub pool1: Vec<f32>,
    /// `(16, 10, 10)`: conv2's feature maps after ReLU.
    pub conv2: Vec<f32>,
    /// `(16, 5, 5)`: conv2's maps after 2×2 max-pooling; flattened, fc1's input.
    pub pool2: Vec<f32>,
    /// `(120)`: fc1 after ReLU.
    pub fc1: Vec<f32>,
    /// `(84)`: fc2 after ReLU.
    pub fc2: Vec<f32>,
    /// `(10)`: fc3's output, one score per digit.
    pub logits: Vec<f32>,
    /// `(10)`: softmax of the logits, summing to 1.
    pub probabilities: Vec<f32>,
}

impl Activations {
    /// The predicted digit: the largest logit (the first, on a tie).
    pub fn predicted(&self) -> usize {
        argmax(self.logits.iter().copied())
    }
}

/// Which input pixels move one class's score, and which way.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Saliency {
    /// The digit whose logit was differentiated, 0–9.
    pub class: usize,
    /// `(28, 28)`: `∂ logit[class] / ∂ pixel`, per unit of the `[0, 1]` pixels the caller gave
    /// (the model's normalisation `(x − mean) / std` included, so a factor `1 / std`).
    pub gradient: Vec<f32>,
    /// `(28, 28)`: `gradient · pixel`; zero on the background, positive where ink raises the
    /// class's score, negative where it lowers it.
    pub gradient_x_input: Vec<f32>,
}

/// Computes [`Activations`] and [`Saliency`] for one image at a time, keeping every buffer
/// between calls: after the first call, repeated calls (one per pointer move while drawing)
/// allocate nothing. Any [`LeNet5`] may be passed to any call.
#[derive(Clone, Debug, Default)]
pub struct Explainer {
    workspace: Workspace,
    /// Parameter gradients: a by-product of the backward pass, needed as its scratch space.
    grads: Option<Gradients>,
    grad_pixels: ndarray::Array4<f32>,
    activations: Activations,
    saliency: Saliency,
}

impl Explainer {
    /// An explainer with empty buffers; they are sized by the first call.
    pub fn new() -> Self {
        Self::default()
    }

    /// The activations of every layer for one image of 784 pixels (row-major 28×28, in
    /// `[0, 1]`), from [`LeNet5::forward`].
    ///
    /// # Errors
    /// [`Error::Shape`] when `image` does not hold 784 values; [`Error::InvalidInput`] naming
    /// the first pixel that is NaN, infinite or outside `[0, 1]`, or a model whose
    /// normalisation constants are not usable.
    pub fn activations(&mut self, model: &LeNet5, image: &[f32]) -> Result<&Activations> {
        self.forward(model, image)?;
        Ok(&self.activations)
    }

    /// The saliency of `class` (0–9) for one image of 784 pixels: the forward pass, then the
    /// backward pass of `logits[class]` down to the pixels.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a class above 9; otherwise as [`Explainer::activations`].
    pub fn saliency(&mut self, model: &LeNet5, image: &[f32], class: usize) -> Result<&Saliency> {
        check_class(class)?;
        self.forward(model, image)?;
        self.backward(model, class)?;
        Ok(&self.saliency)
    }

    /// Both at once, with one forward pass: the activations, and the saliency of `class` or,
    /// when `None`, of the predicted digit.
    ///
    /// # Errors
    /// As [`Explainer::saliency`].
    pub fn explain(
        &mut self,
        model: &LeNet5,
        image: &[f32],
        class: Option<usize>,
    ) -> Result<(&Activations, &Saliency)> {
        if let Some(class) = class {
            check_class(class)?;
        }
        self.forward(model, image)?;
        let class = class.unwrap_or_else(|| self.activations.predicted());
        self.backward(model, class)?;
        Ok((&self.activations, &self.saliency))
    }

    fn forward(&mut self, model: &LeNet5, image: &[f32]) -> Result<()> {
        if image.len() != IMAGE_PIXELS {
            return Err(shape_error("explained image", "(784), one 28×28 image row-major", &[image.len()]));
        }
        let batch = ArrayView4::from_shape((1, 1, IMAGE_SIDE, IMAGE_SIDE), image).expect("784 values");
        model.forward(batch, &mut self.workspace)?;
        let a = &mut self.activations;
        let [conv1, pool1, conv2, pool2, fc1, fc2] = self.workspace.activations();
        for (dst, src) in [
            (&mut a.input, image),
            (&mut a.conv1, conv1),
            (&mut a.pool1, pool1),
            (&mut a.conv2, conv2),
            (&mut a.pool2, pool2),
            (&mut a.fc1, fc1),
            (&mut a.fc2, fc2),
        ] {
            dst.clear();
            dst.extend_from_slice(src);
        }
        let logits = self.workspace.logits();
        a.logits.clear();
        a.logits.extend(logits.iter());
        // Softmax with the largest logit subtracted, so that no exponential overflows.
        let max = a.logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        a.probabilities.clear();
        a.probabilities.extend(a.logits.iter().map(|&v| crate::math::exp(v - max)));
        let sum: f32 = a.probabilities.iter().sum();
        a.probabilities.iter_mut().for_each(|p| *p /= sum);
        Ok(())
    }

    /// After [`Explainer::forward`]: the gradient of `logits[class]` with respect to the pixels.
    fn backward(&mut self, model: &LeNet5, class: usize) -> Result<()> {
        let fits = |g: &Gradients| g.tensors().iter().zip(model.parameters()).all(|(g, p)| g.len() == p.len());
        if !self.grads.as_ref().is_some_and(fits) {
            self.grads = Some(Gradients::zeros_like(model));
        }
        let grads = self.grads.as_mut().expect("just set");
        let grad_logits = self.workspace.grad_logits_mut();
        grad_logits.fill(0.0);
        grad_logits[[0, class]] = 1.0;
        model.backward_from_logits(&mut self.workspace, grads, Some(&mut self.grad_pixels))?;
        let gradient = self.grad_pixels.as_slice().expect("standard layout");
        let s = &mut self.saliency;
        s.class = class;
        s.gradient.clear();
        s.gradient.extend_from_slice(gradient);
        s.gradient_x_input.clear();
        s.gradient_x_input.extend(gradient.iter().zip(&self.activations.input).map(|(g, x)| g * x));
        Ok(())
    }
}

fn check_class(class: usize) -> Result<()> {
    if class >= NUM_CLASSES {
        return Err(Error::InvalidInput(format!("class {class} is not a digit 0–9")));
    }
    Ok(())
}

/// The learned filters, flattened row-major: conv1's `(6, 1, 5, 5)` and conv2's
/// `(16, 6, 5, 5)` (output channel, input channel, row, column), as views of the weights.
///
/// # Panics
/// As [`LeNet5::parameters`]: if a weight array was replaced by one not in standard layout.
pub fn filters(model: &LeNet5) -> (&[f32], &[f32]) {
    let parameters = model.parameters();
    (parameters[0], parameters[2])
}

/// Row bands and column bands of the 3×3 grid over the 28×28 image: 9, 10 and 9 pixels.
const BANDS: [std::ops::Range<usize>; 3] = [0..9, 9..19, 19..28];

/// The nine regions of [`evidence_by_region`], row by row, as [`describe_evidence`] names them.
pub const REGION_NAMES: [&str; 9] = [
    "the upper left",
    "the top",
    "the upper right",
    "the left",
    "the centre",
    "the right",
    "the lower left",
    "the bottom",
    "the lower right",
];

/// How the positive evidence for the saliency's class is spread over a 3×3 grid of the image
/// (rows of 9, 10 and 9 pixels, likewise columns), row by row from the upper left: each cell's
/// sum of the positive values of `gradient_x_input`, as a fraction of the whole image's. All
/// zero when no pixel has positive evidence (a blank image, for one).
///
/// # Errors
/// [`Error::Shape`] when `gradient_x_input` does not hold 784 values.
pub fn evidence_by_region(saliency: &Saliency) -> Result<[f32; 9]> {
    let map = &saliency.gradient_x_input;
    if map.len() != IMAGE_PIXELS {
        return Err(shape_error("saliency gradient_x_input", "(784), one 28×28 map", &[map.len()]));
    }
    let mut cells = [0.0f64; 9];
    for (r, rows) in BANDS.iter().enumerate() {
        for (c, columns) in BANDS.iter().enumerate() {
            cells[r * 3 + c] = rows
                .clone()
                .flat_map(|y| map[y * IMAGE_SIDE + columns.start..y * IMAGE_SIDE + columns.end].iter())
                .map(|&v| f64::from(v.max(0.0)))
                .sum();
        }
    }
    let total: f64 = cells.iter().sum();
    Ok(cells.map(|c| if total > 0.0 { (c / total) as f32 } else { 0.0 }))
}

/// Where the strongest evidence for the saliency's class lies, in words for a screen reader:
/// the name ([`REGION_NAMES`]) of the cell of [`evidence_by_region`] with the largest share,
/// e.g. "the upper right"; "nowhere" when no pixel has positive evidence, and when
/// `gradient_x_input` is not a 28×28 map.
pub fn describe_evidence(saliency: &Saliency) -> String {
    match evidence_by_region(saliency) {
        Ok(cells) if cells.iter().any(|&c| c > 0.0) => REGION_NAMES[argmax(cells)].to_string(),
        _ => "nowhere".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    /// A real-looking stroke: a slanted bar of ink with soft edges, pixels spread over [0, 1].
    fn stroke() -> Vec<f32> {
        (0..IMAGE_PIXELS)
            .map(|i| {
                let (y, x) = ((i / IMAGE_SIDE) as f32, (i % IMAGE_SIDE) as f32);
                let distance = (x - 8.0 - 0.4 * y).abs();
                (1.0 - distance / 3.0).clamp(0.0, 1.0)
            })
            .collect()
    }

    #[test]
    fn activations_equal_the_forward_pass_internals() {
        let model = LeNet5::new(3);
        let image = stroke();
        let mut explainer = Explainer::new();
        // Another image first: nothing of it may remain.
        explainer.activations(&model, &vec![0.5; IMAGE_PIXELS]).unwrap();
        let a = explainer.activations(&model, &image).unwrap().clone();

        let mut workspace = Workspace::default();
        let batch = Array4::from_shape_vec((1, 1, 28, 28), image.clone()).unwrap();
        let logits = model.forward(batch.view(), &mut workspace).unwrap().to_owned();
        let [conv1, pool1, conv2, pool2, fc1, fc2] = workspace.activations();
        assert_eq!(a.input, image);
        assert_eq!(a.conv1, conv1);
        assert_eq!(a.pool1, pool1);
        assert_eq!(a.conv2, conv2);
        assert_eq!(a.pool2, pool2);
        assert_eq!(a.fc1, fc1);
        assert_eq!(a.fc2, fc2);
        assert_eq!(a.logits, logits.as_slice().unwrap());
        let sizes = [a.conv1.len(), a.pool1.len(), a.conv2.len(), a.pool2.len(), a.fc1.len(), a.fc2.len()];
        assert_eq!(sizes, [6 * 28 * 28, 6 * 14 * 14, 16 * 10 * 10, 16 * 5 * 5, 120, 84]);
        let expected = crate::loss::softmax(logits.view());
        for (p, q) in a.probabilities.iter().zip(expected.iter()) {
            assert!((p - q).abs() <= 1e-7, "{:?} vs {expected}", a.probabilities);
        }
        assert_eq!(model.predict(batch.view()).unwrap().as_slice().unwrap(), a.probabilities.as_slice());
    }

    #[test]
    fn maps_mean_what_their_names_say() {
        let model = LeNet5::new(4);
        let mut explainer = Explainer::new();
        let a = explainer.activations(&model, &stroke()).unwrap();
        // pool1 is the maximum of conv1's 2×2 windows; conv1 is after ReLU.
        assert!(a.conv1.iter().all(|&v| v >= 0.0) && a.conv1.iter().any(|&v| v > 0.0));
        for (c, i, j) in [(0, 0, 0), (2, 5, 7), (5, 13, 13)] {
            let window = [(0, 0), (0, 1), (1, 0), (1, 1)]
                .map(|(u, v)| a.conv1[c * 784 + (2 * i + u) * 28 + 2 * j + v])
                .into_iter()
                .fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(a.pool1[c * 196 + i * 14 + j], window);
        }
        // fc1 is relu(W·pool2 + b), summed here in f64.
        for o in [0, 57, 119] {
            let z: f64 = f64::from(model.fc1.bias[o])
                + (0..400).map(|k| f64::from(model.fc1.weight[[o, k]]) * f64::from(a.pool2[k])).sum::<f64>();
            assert!((f64::from(a.fc1[o]) - z.max(0.0)).abs() <= 1e-5 * (1.0 + z.abs()), "fc1[{o}]");
        }
        let sum: f32 = a.probabilities.iter().sum();
        assert!((sum - 1.0).abs() <= 1e-6);
    }

    #[test]
    fn saliency_of_each_class_is_that_logits_gradient() {
        // The network is linear between kinks: along a small step in the direction of the
        // gradient, the logit rises by the squared norm of the gradient times the step.
        let model = LeNet5::new(5);
        let image: Vec<f32> = stroke().iter().map(|v| 0.1 + 0.8 * v).collect();
        let mut explainer = Explainer::new();
        for class in [0, 7] {
            let s = explainer.saliency(&model, &image, class).unwrap().clone();
            assert_eq!(s.class, class);
            let norm2: f64 = s.gradient.iter().map(|&g| f64::from(g) * f64::from(g)).sum();
            let step = 1e-3 / norm2.sqrt();
            let moved: Vec<f32> =
                image.iter().zip(&s.gradient).map(|(&x, &g)| x + (step * f64::from(g)) as f32).collect();
            let before = explainer.activations(&model, &image).unwrap().logits[class];
            let after = explainer.activations(&model, &moved).unwrap().logits[class];
            let predicted = step * norm2;
            let actual = f64::from(after - before);
            assert!(
                (actual - predicted).abs() <= 2e-2 * predicted,
                "class {class}: rise {actual}, gradient says {predicted}"
            );
            for ((gx, g), x) in s.gradient_x_input.iter().zip(&s.gradient).zip(&image) {
                assert_eq!(*gx, g * x);
            }
        }
    }

    #[test]
    fn bad_input_is_named() {
        let model = LeNet5::new(0);
        let mut explainer = Explainer::new();
        let err = explainer.activations(&model, &[0.0; 700]).unwrap_err().to_string();
        assert!(err.contains("(784)") && err.contains("got (700)"), "{err}");
        let mut image = vec![0.0; IMAGE_PIXELS];
        image[28 * 3 + 4] = f32::NAN;
        let err = explainer.saliency(&model, &image, 1).unwrap_err().to_string();
        assert!(err.contains("row 3, column 4") && err.contains("NaN"), "{err}");
        image[28 * 3 + 4] = 1.25;
        let err = explainer.explain(&model, &image, None).unwrap_err().to_string();
        assert!(err.contains("row 3, column 4") && err.contains("1.25"), "{err}");
        let err = explainer.saliency(&model, &stroke(), 10).unwrap_err().to_string();
        assert!(err.contains("class 10 is not a digit 0–9"), "{err}");
    }

    #[test]
    fn explain_defaults_to_the_predicted_class() {
        let model = LeNet5::new(6);
        let mut explainer = Explainer::new();
        let (a, s) = explainer.explain(&model, &stroke(), None).unwrap();
        let (predicted, gradient) = (a.predicted(), s.gradient.clone());
        assert_eq!(s.class, predicted);
        assert_eq!(explainer.saliency(&model, &stroke(), predicted).unwrap().gradient, gradient);
        let other = (predicted + 1) % 10;
        assert_eq!(explainer.explain(&model, &stroke(), Some(other)).unwrap().1.class, other);
    }

    #[test]
    fn filters_are_the_convolution_weights() {
        let model = LeNet5::new(2);
        let (conv1, conv2) = filters(&model);
        assert_eq!(conv1.len(), 150);
        assert_eq!(conv2.len(), 2400);
        assert_eq!(conv1[25 + 2 * 5 + 3], model.conv1.weight[[1, 0, 2, 3]]);
        assert_eq!(conv2[(15 * 6 + 4) * 25 + 24], model.conv2.weight[[15, 4, 4, 4]]);
    }

    #[test]
    fn evidence_names_the_cell_with_the_most_positive_mass() {
        let mut saliency = Saliency { class: 3, gradient: vec![0.0; 784], gradient_x_input: vec![0.0; 784] };
        assert_eq!(describe_evidence(&saliency), "nowhere");
        // Strong negative evidence counts for nothing; positive mass decides.
        saliency.gradient_x_input[27] = 0.5; // row 0, column 27: upper right
        saliency.gradient_x_input[14 * 28 + 14] = -5.0;
        saliency.gradient_x_input[27 * 28] = 0.2; // lower left
        saliency.gradient_x_input[27 * 28 + 1] = 0.1;
        assert_eq!(describe_evidence(&saliency), "the upper right");
        let cells = evidence_by_region(&saliency).unwrap();
        assert!((cells[2] - 0.625).abs() < 1e-6 && (cells[6] - 0.375).abs() < 1e-6, "{cells:?}");
        saliency.gradient_x_input[9 * 28 + 9] = 1.0; // first pixel of the centre cell
        assert_eq!(describe_evidence(&saliency), "the centre");
        saliency.gradient_x_input[18 * 28 + 18] = 1.0; // last pixel of the centre cell
        saliency.gradient_x_input[19 * 28 + 19] = 2.5; // first of the lower right
        assert_eq!(describe_evidence(&saliency), "the lower right");
        saliency.gradient_x_input.truncate(10);
        assert!(evidence_by_region(&saliency).unwrap_err().to_string().contains("got (10)"));
    }
}
