//! 2-D convolution over NCHW tensors: directly over the padded input for a stride-1 layer with
//! one input channel, and by im2col and one matrix product per pass otherwise.

use ndarray::{Array1, Array2, Array4, ArrayView2, ArrayView4, Ix4};

use super::{ensure_shape, kaiming_uniform};
use crate::error::{fmt_shape, shape_error, Error, Result};
use crate::gemm::{self, gemm, Padded};

/// A 2-D convolution layer with square kernels, zero padding and a bias per output channel.
///
/// It computes the **cross-correlation** `y[n, o, i, j] = b[o] + Σ_{c, u, v} w[o, c, u, v] ·
/// x[n, c, i·s + u − p, j·s + v − p]`, as PyTorch's `nn.Conv2d` and Caffe do. The textbook
/// convolution flips the kernel: it equals this layer with every `w[o, c]` rotated by 180°
/// (`w[o, c, k−1−u, k−1−v]`). For a learned kernel the two are the same family of functions,
/// so the flip only matters when weights are exchanged with a library that flips: PyTorch does
/// not, so its weights load here unchanged.
///
/// # Shapes
/// - `weight`: `(out_channels, in_channels, kernel_size, kernel_size)`, PyTorch's layout;
/// - `bias`: `(out_channels)`;
/// - input: `(N, in_channels, H, W)`;
/// - output: `(N, out_channels, H_out, W_out)` with `H_out = (H + 2·padding − kernel_size) /
///   stride + 1`, likewise `W_out` (integer division, as PyTorch).
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2d {
    /// `(out_channels, in_channels, kernel_size, kernel_size)`, standard (row-major) layout.
    pub weight: Array4<f32>,
    /// `(out_channels)`.
    pub bias: Array1<f32>,
    /// Step between neighbouring windows, in input pixels, ≥ 1.
    pub stride: usize,
    /// Zeros added on every side of the input, in pixels.
    pub padding: usize,
}

/// Gradients of a loss with respect to a [`Conv2d`]'s parameters; same shapes as the layer's.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2dGrads {
    /// `(out_channels, in_channels, kernel_size, kernel_size)`.
    pub weight: Array4<f32>,
    /// `(out_channels)`.
    pub bias: Array1<f32>,
}

/// What [`Conv2d::forward`] keeps for [`Conv2d::backward`] (the shapes it saw), plus scratch
/// buffers reused from step to step. Backward is given the forward input again.
///
/// A stride-1 layer with one input channel (LeNet-5's conv1) convolves directly: the forward
/// pass copies the batch once into a zero-padded buffer, which it keeps, and the output and
/// the weight gradient are computed from it by [`gemm::correlate`] and
/// [`gemm::correlate_weight_grad`]. Its im2col matrix would be k² (25) times its input and
/// the product over it short (k² rows): building and reading the matrix cost more than the
/// arithmetic. The other layers take im2col:
///
/// Both passes go through the batch a few images at a time (`chunk` images, chosen so that the
/// chunk's im2col matrix stays in a core's L2 cache): a chunk's im2col matrix is
/// `(in_channels·k·k, chunk·H_out·W_out)`, whose row `(c·k + u)·k + v`, column
/// `n·H_out·W_out + i·W_out + j` holds `x[n, c, i·s + u − p, j·s + v − p]` (0 outside the
/// input). The forward pass is then one product `weight · cols` per chunk, and backward two.
/// The forward pass keeps a batch's im2col matrices (k² times its input) for the backward pass
/// when they fit in [`Conv2dCache::KEEP_BYTES`], as a training shard's do: building them again
/// was a tenth of a training step in wasm. A larger batch, such as an evaluation's, reuses one
/// chunk's matrix, and backward rebuilds them from the input.
#[derive(Clone, Debug, Default)]
pub struct Conv2dCache {
    input_dim: (usize, usize, usize, usize),
    output_hw: (usize, usize),
    /// The chunks' im2col matrices: all of them when they fit in
    /// [`Conv2dCache::KEEP_BYTES`] (`kept`), else one, reused.
    cols: Vec<Array2<f32>>,
    kept: bool,
    /// `(out_channels, chunk·H_out·W_out)`: the forward product, then the output gradient.
    mat: Array2<f32>,
    /// `(in_channels·k·k, chunk·H_out·W_out)`: the gradient of `cols`.
    grad_cols: Array2<f32>,
    /// The bias gradient as it is summed over the output planes, in f64.
    bias_sums: Vec<f64>,
    /// Whether the last forward pass took the direct path ([`Conv2d::forward`]), keeping the
    /// padded input `padded` (shape `padded_shape`) for the backward pass instead of `cols`.
    direct: bool,
    padded: Vec<f32>,
    padded_shape: Option<Padded>,
    /// The output gradient with its rows padded to whole vectors, when they are not.
    grad_padded: Vec<f32>,
}

/// Bytes of im2col matrix per chunk: well inside a core's L2 cache (512 KiB or more on current
/// x86-64 processors), with room for the product and the kernel's other operand.
const CHUNK_BYTES: usize = 256 * 1024;

/// The most input channels for which a stride-1 layer convolves directly ([`Conv2d::forward`]).
const DIRECT_MAX_CHANNELS: usize = 1;

impl Conv2dCache {
    /// Bytes of im2col matrices a forward pass keeps for the backward pass (4 MiB): a LeNet-5
    /// training shard of 16 images needs 1.0 MB for conv2 (conv1 convolves directly).
    pub const KEEP_BYTES: usize = 4 * 1024 * 1024;
}

impl Conv2dGrads {
    /// Zero gradients shaped like `layer`'s parameters.
    pub fn zeros_like(layer: &Conv2d) -> Self {
        Conv2dGrads { weight: Array4::zeros(layer.weight.raw_dim()), bias: Array1::zeros(layer.bias.raw_dim()) }
    }
}

impl Conv2d {
    /// A layer with all weights and biases zero.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when a size or the stride is zero.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        if in_channels == 0 || out_channels == 0 || kernel_size == 0 || stride == 0 {
            return Err(Error::InvalidInput(format!(
                "Conv2d needs in_channels, out_channels, kernel_size and stride ≥ 1, got {in_channels}, {out_channels}, {kernel_size}, {stride}"
            )));
        }
        Ok(Conv2d {
            weight: Array4::zeros((out_channels, in_channels, kernel_size, kernel_size)),
            bias: Array1::zeros(out_channels),
            stride,
            padding,
        })
    }

    /// Like [`Conv2d::new`], with weights drawn by uniform He initialisation
    /// (fan_in = in_channels · kernel_size²) and zero biases.
    ///
    /// # Errors
    /// As [`Conv2d::new`].
    pub fn kaiming(
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        stride: usize,
        padding: usize,
        rng: &mut impl rand::Rng,
    ) -> Result<Self> {
        let mut layer = Self::new(in_channels, out_channels, kernel_size, stride, padding)?;
        let fan_in = in_channels * kernel_size * kernel_size;
        kaiming_uniform(layer.weight.as_slice_mut().expect("fresh array is contiguous"), fan_in, rng);
        Ok(layer)
    }

    /// Number of input channels.
    pub fn in_channels(&self) -> usize {
        self.weight.dim().1
    }

    /// Number of output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.dim().0
    }

    /// Side of the square kernel, in pixels.
    pub fn kernel_size(&self) -> usize {
        self.weight.dim().2
    }

    /// Output height and width for an input of `height` × `width` pixels.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the padded input is smaller than the kernel.
    pub fn output_size(&self, height: usize, width: usize) -> Result<(usize, usize)> {
        let (k, s, p) = (self.kernel_size(), self.stride, self.padding);
        if height + 2 * p < k || width + 2 * p < k {
            return Err(Error::InvalidInput(format!(
                "Conv2d input of {height}×{width} pixels with padding {p} is smaller than the {k}×{k} kernel"
            )));
        }
        Ok(((height + 2 * p - k) / s + 1, (width + 2 * p - k) / s + 1))
    }

    fn check_input(&self, input: &ArrayView4<f32>) -> Result<(usize, usize)> {
        let (n, c, h, w) = input.dim();
        if c != self.in_channels() || n == 0 {
            return Err(shape_error("Conv2d input", format!("(N ≥ 1, {}, H, W)", self.in_channels()), input.shape()));
        }
        self.check_parameters()?;
        self.output_size(h, w)
    }

    fn check_parameters(&self) -> Result<()> {
        let (o, c, kh, kw) = self.weight.dim();
        if kh != kw || self.bias.len() != o || self.stride == 0 || !self.weight.is_standard_layout() {
            return Err(Error::InvalidInput(format!(
                "Conv2d parameters: weight {} (square kernel, row-major), bias {} (expected ({o})), stride {}",
                fmt_shape(&[o, c, kh, kw]),
                fmt_shape(self.bias.shape()),
                self.stride
            )));
        }
        Ok(())
    }

    fn weight_matrix(&self) -> ArrayView2<'_, f32> {
        let (o, c, k, _) = self.weight.dim();
        self.weight.view().into_shape_with_order((o, c * k * k)).expect("checked: standard layout")
    }

    /// Forward pass: writes the output into `output` (reshaped to `(N, out_channels, H_out,
    /// W_out)` if needed) and keeps in `cache` what [`Conv2d::backward`] needs.
    ///
    /// # Errors
    /// [`Error::Shape`] when the input is not `(N ≥ 1, in_channels, H, W)`;
    /// [`Error::InvalidInput`] when it is smaller than the kernel.
    pub fn forward(&self, input: ArrayView4<f32>, cache: &mut Conv2dCache, output: &mut Array4<f32>) -> Result<()> {
        self.forward_impl(input, cache, output, false)
    }

    /// [`Conv2d::forward`] followed by ReLU, fused into the pass that lays out the output: the
    /// same result as `forward` then [`crate::layers::relu`], one sweep over memory fewer.
    ///
    /// # Errors
    /// As [`Conv2d::forward`].
    pub fn forward_relu(
        &self,
        input: ArrayView4<f32>,
        cache: &mut Conv2dCache,
        output: &mut Array4<f32>,
    ) -> Result<()> {
        self.forward_impl(input, cache, output, true)
    }

    /// Whether a layer with `c` input channels convolves directly over its padded input
    /// ([`gemm::correlate`]) rather than through im2col matrices: for stride 1, where the im2col
    /// matrix is k² times the input and building it cost more than the product saved.
    fn direct(&self, c: usize, plane_in: usize) -> bool {
        // An empty input plane (possible with wide padding) has nothing to copy: im2col takes it.
        self.stride == 1 && c <= DIRECT_MAX_CHANNELS && plane_in > 0 && gemm::lanes().is_some()
    }

    /// Copies `count` images (`x`, row-major `(count, c, h, w)`) into `padded` with their zero
    /// border and rows of whole vectors ([`Padded`]).
    fn pad_input(
        &self,
        x: &[f32],
        (n, c, h, w): (usize, usize, usize, usize),
        (ho, wo): (usize, usize),
        padded: &mut Vec<f32>,
    ) -> Padded {
        let (k, p) = (self.kernel_size(), self.padding);
        let shape = Padded {
            images: n,
            channels: c,
            height: h + 2 * p,
            row: gemm::padded_row(wo, k),
            kernel_size: k,
            out_h: ho,
            out_w: wo,
        };
        padded.clear();
        padded.resize(n * c * shape.height * shape.row, 0.0);
        for (src, dst) in x.chunks_exact(h * w).zip(padded.chunks_exact_mut(shape.height * shape.row)) {
            for y in 0..h {
                // A call per row, where the inlined copy cost the module 1 KB: 28 rows an image.
                dst[(y + p) * shape.row + p..][..w].copy_from_slice(&src[y * w..][..w]);
            }
        }
        shape
    }

    /// Images per chunk for an input of `c` channels giving `plane` output pixels.
    fn chunk_size(&self, c: usize, plane: usize) -> usize {
        let k = self.kernel_size();
        (CHUNK_BYTES / (4 * c * k * k * plane).max(1)).max(1)
    }

    fn forward_impl(
        &self,
        input: ArrayView4<f32>,
        cache: &mut Conv2dCache,
        output: &mut Array4<f32>,
        relu: bool,
    ) -> Result<()> {
        let (ho, wo) = self.check_input(&input)?;
        let (n, c, h, w) = input.dim();
        let o = self.out_channels();
        let plane = ho * wo;
        cache.input_dim = input.dim();
        cache.output_hw = (ho, wo);
        ensure_shape(output, Ix4(n, o, ho, wo));
        let x = input.as_standard_layout();
        let x = x.as_slice().expect("standard layout");
        let out = output.as_slice_mut().expect("standard layout");
        cache.direct = false;
        if self.direct(c, h * w) {
            let shape = self.pad_input(x, (n, c, h, w), (ho, wo), &mut cache.padded);
            if gemm::correlate(&cache.padded, shape, self.weight_matrix(), out) {
                cache.direct = true;
                cache.padded_shape = Some(shape);
                for (index, plane_out) in out.chunks_exact_mut(plane).enumerate() {
                    add_bias(plane_out, self.bias[index % o], relu);
                }
                return Ok(());
            }
        }
        let chunk = self.chunk_size(c, plane);
        let k = self.kernel_size();
        // Per image, so that no product can overflow whatever the batch size.
        cache.kept = n <= Conv2dCache::KEEP_BYTES / (c * k * k * plane * 4).max(1);
        let slots = if cache.kept { n.div_ceil(chunk) } else { 1 };
        cache.cols.resize_with(slots.max(cache.cols.len()), || Array2::zeros((0, 0)));
        for (index, first) in (0..n).step_by(chunk).enumerate() {
            let count = chunk.min(n - first);
            let images = &x[first * c * h * w..(first + count) * c * h * w];
            let cols = &mut cache.cols[if cache.kept { index } else { 0 }];
            self.im2col(images, (count, c, h, w), cols);
            ensure_shape(&mut cache.mat, ndarray::Ix2(o, count * plane));
            gemm(self.weight_matrix(), cols.view(), false, cache.mat.view_mut());

            // (out_channels, chunk·P) → (chunk, out_channels, P), then the bias.
            let mat = cache.mat.as_slice().expect("standard layout");
            let out = &mut out[first * o * plane..(first + count) * o * plane];
            for (ch, &b) in self.bias.iter().enumerate() {
                let row = &mat[ch * count * plane..(ch + 1) * count * plane];
                for s in 0..count {
                    let dst = &mut out[(s * o + ch) * plane..][..plane];
                    dst.copy_from_slice(&row[s * plane..(s + 1) * plane]);
                    add_bias(dst, b, relu);
                }
            }
        }
        Ok(())
    }

    /// Backward pass: given the `input` of the last forward pass and `grad_output` (the loss's
    /// gradient with respect to this layer's output), writes the parameters' gradients into
    /// `grads` (overwriting them) and, when `grad_input` is given, the gradient with respect to
    /// the input (the first layer of a network does not need it, and skipping it saves a third
    /// of the work). `input` must be the last forward pass's: when that pass kept its im2col
    /// matrices ([`Conv2dCache::KEEP_BYTES`]), backward reads them and `input` only serves to
    /// check the shape.
    ///
    /// # Errors
    /// [`Error::Shape`] when `input` or `grad_output` does not have the shape of the last
    /// forward pass, or `grads` not that of the parameters.
    pub fn backward(
        &self,
        input: ArrayView4<f32>,
        cache: &mut Conv2dCache,
        grad_output: ArrayView4<f32>,
        grads: &mut Conv2dGrads,
        mut grad_input: Option<&mut Array4<f32>>,
    ) -> Result<()> {
        let (n, c, h, w) = cache.input_dim;
        let (ho, wo) = cache.output_hw;
        let o = self.out_channels();
        let plane = ho * wo;
        if input.dim() != cache.input_dim || n == 0 {
            return Err(shape_error(
                "Conv2d backward input (the forward pass's)",
                fmt_shape(&[n, c, h, w]),
                input.shape(),
            ));
        }
        if grad_output.dim() != (n, o, ho, wo) {
            return Err(shape_error("Conv2d grad_output", fmt_shape(&[n, o, ho, wo]), grad_output.shape()));
        }
        if grads.weight.dim() != self.weight.dim() || grads.bias.dim() != self.bias.dim() {
            return Err(shape_error("Conv2d grads.weight", fmt_shape(self.weight.shape()), grads.weight.shape()));
        }
        let k = c * self.kernel_size() * self.kernel_size();
        let x = input.as_standard_layout();
        let x = x.as_slice().expect("standard layout");
        let go = grad_output.as_standard_layout();
        let go = go.as_slice().expect("standard layout");
        if let Some(grad_input) = grad_input.as_deref_mut() {
            ensure_shape(grad_input, Ix4(n, c, h, w));
        }
        cache.bias_sums.clear();
        cache.bias_sums.resize(o, 0.0);
        for (index, plane_grad) in go.chunks_exact(plane).enumerate() {
            cache.bias_sums[index % o] += sum_f64(plane_grad);
        }
        for (b, &sum) in grads.bias.iter_mut().zip(&cache.bias_sums) {
            *b = sum as f32;
        }
        if cache.direct {
            let shape = cache.padded_shape.expect("set with `direct`");
            let wo_pad = gemm::padded_width(wo);
            let grad = if wo_pad == wo {
                go
            } else {
                cache.grad_padded.clear();
                cache.grad_padded.resize(n * o * ho * wo_pad, 0.0);
                for (src, dst) in go.chunks_exact(wo).zip(cache.grad_padded.chunks_exact_mut(wo_pad)) {
                    dst[..wo].copy_from_slice(src);
                }
                &cache.grad_padded[..]
            };
            let grad_w = grads.weight.as_slice_mut().ok_or_else(|| {
                Error::InvalidInput("Conv2d grads.weight must be in standard (row-major) layout".into())
            })?;
            // The forward pass took the direct path only where the kernels run, so this holds; a
            // `false` would leave `grads.weight` stale, hence a check in release builds too.
            if !gemm::correlate_weight_grad(&cache.padded, shape, grad, o, grad_w) {
                return Err(Error::InvalidInput(
                    "Conv2d backward: the direct kernels did not run for a direct forward pass".into(),
                ));
            }
            if grad_input.is_none() {
                return Ok(());
            }
        }
        let chunk = self.chunk_size(c, plane);
        for (index, first) in (0..n).step_by(chunk).enumerate() {
            let count = chunk.min(n - first);
            // (chunk, out_channels, P) → (out_channels, chunk·P), the layout of the forward product.
            ensure_shape(&mut cache.mat, ndarray::Ix2(o, count * plane));
            let mat = cache.mat.as_slice_mut().expect("standard layout");
            for ch in 0..o {
                for s in 0..count {
                    let src = &go[((first + s) * o + ch) * plane..][..plane];
                    mat[ch * count * plane + s * plane..][..plane].copy_from_slice(src);
                }
            }
            if !cache.direct {
                let cols = if cache.kept {
                    &cache.cols[index]
                } else {
                    self.im2col(
                        &x[first * c * h * w..(first + count) * c * h * w],
                        (count, c, h, w),
                        &mut cache.cols[0],
                    );
                    &cache.cols[0]
                };
                let grad_w = grads.weight.view_mut().into_shape_with_order((o, k)).map_err(|_| {
                    Error::InvalidInput("Conv2d grads.weight must be in standard (row-major) layout".into())
                })?;
                gemm(cache.mat.view(), cols.t(), first > 0, grad_w);
            }
            if let Some(grad_input) = grad_input.as_deref_mut() {
                ensure_shape(&mut cache.grad_cols, ndarray::Ix2(k, count * plane));
                gemm(self.weight_matrix().t(), cache.mat.view(), false, cache.grad_cols.view_mut());
                let dx = grad_input.as_slice_mut().expect("standard layout");
                self.col2im(
                    &cache.grad_cols,
                    (count, c, h, w),
                    (ho, wo),
                    &mut dx[first * c * h * w..(first + count) * c * h * w],
                );
            }
        }
        Ok(())
    }

    /// For kernel offset `u` (or `v`), the range of output positions whose input position
    /// `i·s + u − p` falls inside `0..size`.
    #[inline]
    fn valid_range(&self, offset: usize, size: usize, out: usize) -> (usize, usize) {
        let (s, p) = (self.stride, self.padding);
        let lo = if p > offset { (p - offset).div_ceil(s) } else { 0 };
        let hi = if size + p > offset { (size + p - offset).div_ceil(s).min(out) } else { 0 };
        (lo.min(hi), hi)
    }

    /// The im2col matrix of `count` images (`x`, row-major `(count, c, h, w)`) into `cols`.
    fn im2col(&self, x: &[f32], (n, c, h, w): (usize, usize, usize, usize), cols: &mut Array2<f32>) {
        let k = self.kernel_size();
        let (ho, wo) = self.output_size(h, w).expect("checked by the caller");
        let (s, p) = (self.stride, self.padding);
        let plane = ho * wo;
        ensure_shape(cols, ndarray::Ix2(c * k * k, n * plane));
        let cols = cols.as_slice_mut().expect("standard layout");
        for ch in 0..c {
            for u in 0..k {
                let (ylo, yhi) = self.valid_range(u, h, ho);
                for v in 0..k {
                    let (xlo, xhi) = self.valid_range(v, w, wo);
                    let row = (ch * k + u) * k + v;
                    for b in 0..n {
                        let src = &x[(b * c + ch) * h * w..][..h * w];
                        let dst = &mut cols[row * n * plane + b * plane..][..plane];
                        if s == 1 && gemm::lanes().is_some() {
                            // The window's inside is `yhi − ylo` runs of one source row each,
                            // zeros around it: one kernel call instead of slicing row by row.
                            if !(ylo == 0 && yhi == ho && xlo == 0 && xhi == wo) {
                                dst.fill(0.0);
                            }
                            if ylo < yhi && xlo < xhi {
                                let first = (ylo + u - p) * w + xlo + v - p;
                                let lines = (yhi - ylo, xhi - xlo);
                                gemm::copy_lines::<false>(&mut dst[ylo * wo + xlo..], wo, &src[first..], w, lines);
                            }
                            continue;
                        }
                        for i in 0..ho {
                            let line = &mut dst[i * wo..(i + 1) * wo];
                            if i < ylo || i >= yhi || xlo >= xhi {
                                line.fill(0.0);
                                continue;
                            }
                            let y = i * s + u - p;
                            line[..xlo].fill(0.0);
                            line[xhi..].fill(0.0);
                            let start = y * w + xlo * s + v - p;
                            if s == 1 {
                                short_rows::<false>(&mut line[xlo..xhi], &src[start..start + (xhi - xlo)]);
                            } else {
                                for (j, d) in line[xlo..xhi].iter_mut().enumerate() {
                                    *d = src[start + j * s];
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of [`Self::im2col`]: adds every column entry back onto the input pixel it was
    /// copied from. Pixels under several windows receive the sum of their gradients.
    fn col2im(
        &self,
        grad_cols: &Array2<f32>,
        input_dim: (usize, usize, usize, usize),
        output_hw: (usize, usize),
        dx: &mut [f32],
    ) {
        let (n, c, h, w) = input_dim;
        let (ho, wo) = output_hw;
        let k = self.kernel_size();
        let (s, p) = (self.stride, self.padding);
        let plane = ho * wo;
        let cols = grad_cols.as_slice().expect("standard layout");
        dx.fill(0.0);
        // Image by image: each image's gradient planes (c · h · w floats, 4.7 KB for LeNet-5's
        // second layer) stay in L1 while all k² windows add into them, where window by window
        // over the whole batch went back to L2 for every one. Each pixel still receives its
        // windows in the same order, so the sums are the same bits.
        // (The window bounds are a few integer operations; computed per plane, they cost less
        // module than tables of them.)
        let kernel_rows = s == 1 && gemm::lanes().is_some();
        for b in 0..n {
            for ch in 0..c {
                let dst = &mut dx[(b * c + ch) * h * w..][..h * w];
                for u in 0..k {
                    let (ylo, yhi) = self.valid_range(u, h, ho);
                    for v in 0..k {
                        let (xlo, xhi) = self.valid_range(v, w, wo);
                        if xlo >= xhi {
                            continue;
                        }
                        let row = (ch * k + u) * k + v;
                        let src = &cols[row * n * plane + b * plane..][..plane];
                        if kernel_rows {
                            if ylo < yhi {
                                let start = (ylo + u - p) * w + xlo + v - p;
                                let lines = (yhi - ylo, xhi - xlo);
                                gemm::copy_lines::<true>(&mut dst[start..], w, &src[ylo * wo + xlo..], wo, lines);
                            }
                            continue;
                        }
                        for i in ylo..yhi {
                            let y = i * s + u - p;
                            let start = y * w + xlo * s + v - p;
                            let g = &src[i * wo + xlo..i * wo + xhi];
                            if s == 1 {
                                short_rows::<true>(&mut dst[start..start + g.len()], g);
                            } else {
                                for (j, &g) in g.iter().enumerate() {
                                    dst[start + j * s] += g;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The definition of the forward pass as plain loops, accumulating in f64: the reference
    /// the fast [`Conv2d::forward`] is tested against. Slow.
    ///
    /// # Errors
    /// As [`Conv2d::forward`].
    pub fn forward_reference(&self, input: ArrayView4<f32>) -> Result<Array4<f32>> {
        let (ho, wo) = self.check_input(&input)?;
        let (n, c, h, w) = input.dim();
        let (k, s, p) = (self.kernel_size(), self.stride as isize, self.padding as isize);
        let mut out = Array4::zeros((n, self.out_channels(), ho, wo));
        for ((b, o, i, j), y) in out.indexed_iter_mut() {
            let mut acc = f64::from(self.bias[o]);
            for ch in 0..c {
                for u in 0..k {
                    for v in 0..k {
                        let yy = i as isize * s + u as isize - p;
                        let xx = j as isize * s + v as isize - p;
                        if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w {
                            acc += f64::from(self.weight[[o, ch, u, v]])
                                * f64::from(input[[b, ch, yy as usize, xx as usize]]);
                        }
                    }
                }
            }
            *y = acc as f32;
        }
        Ok(out)
    }

    /// The backward pass as plain loops in f64: returns the input gradient and the parameter
    /// gradients for `grad_output`. The reference for [`Conv2d::backward`]. Slow.
    ///
    /// # Errors
    /// As [`Conv2d::forward`], and [`Error::Shape`] when `grad_output` has the wrong shape.
    pub fn backward_reference(
        &self,
        input: ArrayView4<f32>,
        grad_output: ArrayView4<f32>,
    ) -> Result<(Array4<f32>, Conv2dGrads)> {
        let (ho, wo) = self.check_input(&input)?;
        let (n, c, h, w) = input.dim();
        let o = self.out_channels();
        if grad_output.dim() != (n, o, ho, wo) {
            return Err(shape_error("Conv2d grad_output", fmt_shape(&[n, o, ho, wo]), grad_output.shape()));
        }
        let (k, s, p) = (self.kernel_size(), self.stride as isize, self.padding as isize);
        let mut dx = ndarray::Array4::<f64>::zeros((n, c, h, w));
        let mut dw = ndarray::Array4::<f64>::zeros(self.weight.raw_dim());
        let mut db = ndarray::Array1::<f64>::zeros(o);
        for ((b, oc, i, j), &g) in grad_output.indexed_iter() {
            let g = f64::from(g);
            db[oc] += g;
            for ch in 0..c {
                for u in 0..k {
                    for v in 0..k {
                        let yy = i as isize * s + u as isize - p;
                        let xx = j as isize * s + v as isize - p;
                        if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w {
                            let (yy, xx) = (yy as usize, xx as usize);
                            dw[[oc, ch, u, v]] += g * f64::from(input[[b, ch, yy, xx]]);
                            dx[[b, ch, yy, xx]] += g * f64::from(self.weight[[oc, ch, u, v]]);
                        }
                    }
                }
            }
        }
        let grads = Conv2dGrads { weight: dw.mapv(|v| v as f32), bias: db.mapv(|v| v as f32) };
        Ok((dx.mapv(|v| v as f32), grads))
    }
}

/// `values[i] += bias`, then ReLU when `relu`. One function for both paths of the forward pass
/// (the module carries each copy of these loops).
#[inline(never)]
fn add_bias(values: &mut [f32], bias: f32, relu: bool) {
    if relu {
        // `if x < 0 { 0 } else { x }` keeps NaN, as `relu` does.
        for v in values {
            let x = *v + bias;
            *v = if x < 0.0 { 0.0 } else { x };
        }
    } else {
        for v in values {
            *v += bias;
        }
    }
}

/// `Σ values` in f64, in four interleaved sums added pairwise: a fixed order, and four times
/// the throughput of one chain of dependent additions.
fn sum_f64(values: &[f32]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = values.chunks_exact(4);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += f64::from(v);
        }
    }
    rest.iter().fold((acc[0] + acc[1]) + (acc[2] + acc[3]), |sum, &v| sum + f64::from(v))
}

/// `dst.copy_from_slice(src)` (`ADD` false) or `dst[i] += src[i]` (`ADD` true) for the short
/// rows of im2col and col2im (5 to 32 values): a `memcpy` call per row costs more than the copy
/// itself, so go in 4-lane chunks inline. `ADD` is a constant, so each use compiles to a loop
/// of its own with no branch.
#[inline(always)]
fn short_rows<const ADD: bool>(dst: &mut [f32], src: &[f32]) {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    let mut chunks_d = dst.chunks_exact_mut(4);
    let mut chunks_s = src.chunks_exact(4);
    // A function marked to inline, not a closure: the wasm build inlines only what is marked.
    #[inline(always)]
    fn put<const ADD: bool>(d: &mut f32, s: f32) {
        if ADD {
            *d += s
        } else {
            *d = s
        }
    }
    for (d, s) in (&mut chunks_d).zip(&mut chunks_s) {
        // Four statements rather than `copy_from_slice`, which the wasm build (inliner capped,
        // .cargo/config.toml) would leave as a call per chunk; LLVM merges them into one load
        // and one store (or add).
        put::<ADD>(&mut d[0], s[0]);
        put::<ADD>(&mut d[1], s[1]);
        put::<ADD>(&mut d[2], s[2]);
        put::<ADD>(&mut d[3], s[3]);
    }
    for (d, s) in chunks_d.into_remainder().iter_mut().zip(chunks_s.remainder()) {
        put::<ADD>(d, *s);
    }
}
