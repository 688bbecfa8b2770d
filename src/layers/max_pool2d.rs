//! 2-D max-pooling over NCHW tensors.

use ndarray::{Array4, ArrayView4, Ix4};

use super::ensure_shape;
use crate::error::{fmt_shape, shape_error, Error, Result};

/// Max-pooling with square windows and no padding: each output pixel is the largest input
/// pixel of its `kernel_size × kernel_size` window, windows `stride` pixels apart.
///
/// On ties the first maximum in row-major order within the window wins and, in backward,
/// takes the whole gradient (PyTorch's CPU kernel does the same). Windows may overlap
/// (`stride < kernel_size`): backward then adds the gradients of every window a pixel won.
///
/// # Shapes
/// - input: `(N, C, H, W)`;
/// - output: `(N, C, H_out, W_out)` with `H_out = (H − kernel_size) / stride + 1`, likewise
///   `W_out` (integer division: a partial last window is dropped, as PyTorch's default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2d {
    /// Side of the square window, in pixels, ≥ 1.
    pub kernel_size: usize,
    /// Step between neighbouring windows, in pixels, ≥ 1.
    pub stride: usize,
}

/// What [`MaxPool2d::forward`] keeps for [`MaxPool2d::backward`]: for every output pixel, the
/// index of its window's maximum within its input plane (`y·W + x`).
#[derive(Clone, Debug, Default)]
pub struct MaxPool2dCache {
    argmax: Vec<u32>,
    input_dim: (usize, usize, usize, usize),
    output_hw: (usize, usize),
}

impl MaxPool2d {
    /// A pooling layer.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `kernel_size` or `stride` is zero.
    pub fn new(kernel_size: usize, stride: usize) -> Result<Self> {
        if kernel_size == 0 || stride == 0 {
            return Err(Error::InvalidInput(format!(
                "MaxPool2d needs kernel_size and stride ≥ 1, got {kernel_size} and {stride}"
            )));
        }
        Ok(MaxPool2d { kernel_size, stride })
    }

    /// Output height and width for an input of `height` × `width` pixels.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the input is smaller than one window, or the layer's sizes
    /// are zero.
    pub fn output_size(&self, height: usize, width: usize) -> Result<(usize, usize)> {
        let (k, s) = (self.kernel_size, self.stride);
        if k == 0 || s == 0 || height < k || width < k {
            return Err(Error::InvalidInput(format!(
                "MaxPool2d input of {height}×{width} pixels is smaller than the {k}×{k} window (stride {s})"
            )));
        }
        Ok(((height - k) / s + 1, (width - k) / s + 1))
    }

    /// Forward pass: writes the pooled tensor into `output` (reshaped if needed) and the
    /// position of every maximum into `cache`.
    ///
    /// # Errors
    /// [`Error::Shape`] for an empty batch; [`Error::InvalidInput`] when the input is smaller
    /// than one window.
    pub fn forward(&self, input: ArrayView4<f32>, cache: &mut MaxPool2dCache, output: &mut Array4<f32>) -> Result<()> {
        let (n, c, h, w) = input.dim();
        if n == 0 || c == 0 {
            return Err(shape_error("MaxPool2d input", "(N ≥ 1, C ≥ 1, H, W)", input.shape()));
        }
        let (ho, wo) = self.output_size(h, w)?;
        let (k, s) = (self.kernel_size, self.stride);
        if h * w > u32::MAX as usize {
            return Err(Error::InvalidInput(format!("MaxPool2d input plane of {h}×{w} pixels is too large")));
        }
        ensure_shape(output, Ix4(n, c, ho, wo));
        cache.argmax.resize(n * c * ho * wo, 0);
        cache.input_dim = (n, c, h, w);
        cache.output_hw = (ho, wo);
        let x = input.as_standard_layout();
        let x = x.as_slice().expect("standard layout");
        let out = output.as_slice_mut().expect("standard layout");
        for (src, (dst, arg)) in
            x.chunks_exact(h * w).zip(out.chunks_exact_mut(ho * wo).zip(cache.argmax.chunks_exact_mut(ho * wo)))
        {
            if k == 2 && s == 2 {
                pool_2x2(src, w, ho, wo, dst, arg);
                continue;
            }
            for i in 0..ho {
                for j in 0..wo {
                    let first = i * s * w + j * s;
                    let mut best = first;
                    let mut best_value = src[first];
                    for u in 0..k {
                        let row = (i * s + u) * w + j * s;
                        for (v, &value) in src[row..row + k].iter().enumerate() {
                            // Strictly greater: the first maximum in row-major order wins ties.
                            if value > best_value {
                                best_value = value;
                                best = row + v;
                            }
                        }
                    }
                    dst[i * wo + j] = best_value;
                    arg[i * wo + j] = best as u32;
                }
            }
        }
        Ok(())
    }

    /// Backward pass: writes into `grad_input` (reshaped to the input's shape) the gradient
    /// with respect to the input: zero everywhere except at each window's maximum, which
    /// receives — adds, where windows overlap — its output pixel's gradient.
    ///
    /// # Errors
    /// [`Error::Shape`] when `grad_output` does not have the shape of the last forward output.
    pub fn backward(
        &self,
        cache: &MaxPool2dCache,
        grad_output: ArrayView4<f32>,
        grad_input: &mut Array4<f32>,
    ) -> Result<()> {
        let (n, c, h, w) = cache.input_dim;
        let (ho, wo) = cache.output_hw;
        if grad_output.dim() != (n, c, ho, wo) || n == 0 {
            return Err(shape_error("MaxPool2d grad_output", fmt_shape(&[n, c, ho, wo]), grad_output.shape()));
        }
        ensure_shape(grad_input, Ix4(n, c, h, w));
        let go = grad_output.as_standard_layout();
        let go = go.as_slice().expect("standard layout");
        let dx = grad_input.as_slice_mut().expect("standard layout");
        dx.fill(0.0);
        for (dst, (src, arg)) in
            dx.chunks_exact_mut(h * w).zip(go.chunks_exact(ho * wo).zip(cache.argmax.chunks_exact(ho * wo)))
        {
            for (&g, &a) in src.iter().zip(arg) {
                dst[a as usize] += g;
            }
        }
        Ok(())
    }
}

/// The common 2×2, stride-2 case of [`MaxPool2d::forward`] for one plane, unrolled: the same
/// comparisons in the same order (row-major, strictly greater), so the same maxima and ties.
fn pool_2x2(src: &[f32], w: usize, ho: usize, wo: usize, dst: &mut [f32], arg: &mut [u32]) {
    for i in 0..ho {
        let top = &src[2 * i * w..2 * i * w + 2 * wo];
        let bottom = &src[(2 * i + 1) * w..(2 * i + 1) * w + 2 * wo];
        let (dst, arg) = (&mut dst[i * wo..(i + 1) * wo], &mut arg[i * wo..(i + 1) * wo]);
        for j in 0..wo {
            let base = (2 * i * w + 2 * j) as u32;
            let (mut best, mut at) = (top[2 * j], base);
            if top[2 * j + 1] > best {
                (best, at) = (top[2 * j + 1], base + 1);
            }
            if bottom[2 * j] > best {
                (best, at) = (bottom[2 * j], base + w as u32);
            }
            if bottom[2 * j + 1] > best {
                (best, at) = (bottom[2 * j + 1], base + w as u32 + 1);
            }
            dst[j] = best;
            arg[j] = at;
        }
    }
}
