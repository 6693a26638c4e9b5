// CPU kernels of geocli's point networks: the fused neighbour max, farthest point sampling,
// batch norm fused with its leaky ReLU, and that norm and activation taken after a max.
//
// Fused neighbour max: out[b,i,c] = max_j f[b, nbr[b,i,j], c].
//
// The pure-torch route gathers a (B, M, k, C) tensor only to reduce it over k, and its
// backward scatters through that tensor again; on a CPU this memory traffic, not the
// arithmetic, is most of a training step. Here the forward streams each neighbour row
// once and keeps, per output channel, the arg-max point index (int32); the backward adds
// each output gradient to that one point. Nothing of size k survives the forward.
//
// Semantics match torch.max over the neighbour axis: the first maximum in neighbour order
// wins ties, and NaN propagates (the first NaN wins). Comparisons are done in float32 for
// every input type; outputs are copies of input values, so they are bit-identical to the
// pure-torch route in float32 and bfloat16 alike.
//
// Threads: at::parallel_for (the pool torch.set_num_threads sizes). The forward splits
// output rows; the backward splits (batch, channel block) pairs, so no two threads ever
// write the same gradient element and no atomics are needed.
//
// Machine code: the hot loops are compiled for x86-64-v4 (AVX-512 with 16-bit lanes),
// x86-64-v3 (AVX2) and baseline x86-64 and chosen at load time (GCC target_clones), so a build made on one machine runs on
// another.

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr int64_t kChannelBlock = 64;

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GEOCLI_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GEOCLI_CLONES
#endif

// bfloat16 values are handled as their bits (uint16_t) in the norm kernels, and converted
// with plain bit operations, so that the compiler vectorises the loops around them
// (c10's conversions and class type are not). bfloat16 -> float is exact; float ->
// bfloat16 rounds to nearest even and keeps NaN a NaN, as c10 does.
inline float as_float(float v) { return v; }
inline float as_float(uint16_t bits) {
    const uint32_t widened = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &widened, sizeof f);
    return f;
}
inline float as_float(c10::BFloat16 v) { return as_float(v.x); }

template <typename T>
inline T from_float(float f);
template <>
inline float from_float<float>(float f) { return f; }
template <>
inline uint16_t from_float<uint16_t>(float f) {
    const uint32_t bits = __builtin_bit_cast(uint32_t, f);
    const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
    return static_cast<uint16_t>((bits & 0x7FFFFFFFu) > 0x7F800000u ? 0x7FC0u : rounded);
}

// A float32 or bfloat16 tensor's data as float or as bfloat16 bits.
template <typename T>
inline T* data(const torch::Tensor& t);
template <>
inline float* data<float>(const torch::Tensor& t) { return t.data_ptr<float>(); }
template <>
inline uint16_t* data<uint16_t>(const torch::Tensor& t) { return reinterpret_cast<uint16_t*>(t.data_ptr<c10::BFloat16>()); }

// One output row: running max over the K neighbour rows, channel by channel.
template <typename T>
GEOCLI_CLONES void max_row(const T* base, const int64_t* nbr, int64_t K, int64_t C, float* best, int32_t* arg) {
    const T* first = base + nbr[0] * C;
    const int32_t j0 = static_cast<int32_t>(nbr[0]);
    for (int64_t c = 0; c < C; ++c) {
        best[c] = as_float(first[c]);
        arg[c] = j0;
    }
    for (int64_t kk = 1; kk < K; ++kk) {
        const T* row = base + nbr[kk] * C;
        const int32_t j = static_cast<int32_t>(nbr[kk]);
        for (int64_t c = 0; c < C; ++c) {
            const float v = as_float(row[c]);
            const float b = best[c];
            // v > b, or v is the first NaN: torch.max's rule
            const bool take = (v > b) | ((v != v) & (b == b));
            best[c] = take ? v : b;
            arg[c] = take ? j : arg[c];
        }
    }
}

template <typename T>
void forward_impl(const torch::Tensor& features, const torch::Tensor& neighbors, torch::Tensor& out, torch::Tensor& arg) {
    const int64_t B = features.size(0), N = features.size(1), C = features.size(2);
    const int64_t M = neighbors.size(1), K = neighbors.size(2);
    const T* f = features.data_ptr<T>();
    const int64_t* nbr = neighbors.data_ptr<int64_t>();
    T* o = out.data_ptr<T>();
    int32_t* a = arg.data_ptr<int32_t>();
    at::parallel_for(0, B * M, 16, [&](int64_t begin, int64_t end) {
        std::vector<float> best(C);
        for (int64_t r = begin; r < end; ++r) {
            const int64_t b = r / M;
            max_row<T>(f + b * N * C, nbr + r * K, K, C, best.data(), a + r * C);
            T* orow = o + r * C;
            for (int64_t c = 0; c < C; ++c) orow[c] = static_cast<T>(best[c]);
        }
    });
}

// grad[b, arg[b,m,c], c] += grad_out[b,m,c] for the channels [c0, c1) of one batch element.
template <typename T>
GEOCLI_CLONES void scatter_block(const T* g, const int32_t* a, float* grad, int64_t M, int64_t C, int64_t c0, int64_t c1) {
    for (int64_t m = 0; m < M; ++m) {
        const T* grow = g + m * C;
        const int32_t* arow = a + m * C;
        for (int64_t c = c0; c < c1; ++c) grad[static_cast<int64_t>(arow[c]) * C + c] += as_float(grow[c]);
    }
}

template <typename T>
void backward_impl(const torch::Tensor& grad_out, const torch::Tensor& arg, torch::Tensor& grad) {
    const int64_t B = grad_out.size(0), M = grad_out.size(1), C = grad_out.size(2), N = grad.size(1);
    const int64_t blocks = (C + kChannelBlock - 1) / kChannelBlock;
    const T* g = grad_out.data_ptr<T>();
    const int32_t* a = arg.data_ptr<int32_t>();
    float* out = grad.data_ptr<float>();
    at::parallel_for(0, B * blocks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
            const int64_t b = t / blocks, c0 = (t % blocks) * kChannelBlock;
            scatter_block<T>(g + b * M * C, a + b * M * C, out + b * N * C, M, C, c0, std::min(C, c0 + kChannelBlock));
        }
    });
}

void check_inputs(const torch::Tensor& features, const torch::Tensor& neighbors) {
    TORCH_CHECK(features.device().is_cpu() && neighbors.device().is_cpu(), "gather_max: CPU tensors only");
    TORCH_CHECK(features.dim() == 3 && neighbors.dim() == 3, "gather_max: features (B,N,C) and neighbors (B,M,k) expected");
    TORCH_CHECK(features.size(0) == neighbors.size(0), "gather_max: batch sizes differ");
    TORCH_CHECK(neighbors.scalar_type() == torch::kInt64, "gather_max: neighbors must be int64");
    TORCH_CHECK(neighbors.size(2) >= 1, "gather_max: at least one neighbour needed");
    TORCH_CHECK(features.size(1) < (int64_t{1} << 31), "gather_max: too many points for int32 indices");
    TORCH_CHECK(features.scalar_type() == torch::kFloat32 || features.scalar_type() == torch::kBFloat16,
                "gather_max: float32 or bfloat16 features expected");
    // Native code never follows an unchecked index.
    if (neighbors.numel() > 0) {
        const int64_t N = features.size(1);
        const int64_t* p = neighbors.data_ptr<int64_t>();
        std::atomic<bool> bad{false};
        at::parallel_for(0, neighbors.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
            bool local = false;
            for (int64_t i = begin; i < end; ++i) local |= (p[i] < 0) | (p[i] >= N);
            if (local) bad = true;
        });
        TORCH_CHECK(!bad, "gather_max: neighbour index out of range [0, ", N, ")");
    }
}

std::vector<torch::Tensor> gather_max_forward(torch::Tensor features, torch::Tensor neighbors) {
    features = features.contiguous();
    neighbors = neighbors.contiguous();  // before the index check, which reads the buffer linearly
    check_inputs(features, neighbors);
    const int64_t B = features.size(0), C = features.size(2), M = neighbors.size(1);
    auto out = torch::empty({B, M, C}, features.options());
    auto arg = torch::empty({B, M, C}, features.options().dtype(torch::kInt32));
    if (out.numel() > 0) {
        if (features.scalar_type() == torch::kFloat32) {
            forward_impl<float>(features, neighbors, out, arg);
        } else {
            forward_impl<c10::BFloat16>(features, neighbors, out, arg);
        }
    }
    return {out, arg};
}

torch::Tensor gather_max_backward(torch::Tensor grad_out, torch::Tensor arg, int64_t num_points) {
    TORCH_CHECK(grad_out.sizes() == arg.sizes() && grad_out.dim() == 3, "gather_max_backward: shapes differ");
    TORCH_CHECK(arg.scalar_type() == torch::kInt32, "gather_max_backward: int32 arg-max expected");
    grad_out = grad_out.contiguous();
    arg = arg.contiguous();
    auto grad = torch::zeros({grad_out.size(0), num_points, grad_out.size(2)}, grad_out.options().dtype(torch::kFloat32));
    if (grad_out.numel() > 0) {
        if (grad_out.scalar_type() == torch::kFloat32) {
            backward_impl<float>(grad_out, arg, grad);
        } else {
            TORCH_CHECK(grad_out.scalar_type() == torch::kBFloat16, "gather_max_backward: float32 or bfloat16 expected");
            backward_impl<c10::BFloat16>(grad_out, arg, grad);
        }
    }
    return grad.to(grad_out.scalar_type());
}

// Greedy farthest point sampling of one cloud: the same picks as geocli.ops.neighbors._fps_torch.
// Squared distances are summed x, y, z in that order without FMA contraction (-ffp-contract=off),
// and the first maximum wins ties, so every index agrees with the torch route.
//
// Each pick scans the cloud in blocks of kFpsLanes points, and lane l keeps the first maximum
// among the points l, l + kFpsLanes, ...: a loop of selects with no branch and no dependence
// between lanes, which the compiler turns into vector code (a single running arg-max is a
// branch per point, and several times slower on AVX-512). The lanes' winners are merged by value,
// then lowest index, which is the first maximum of the whole block range; the remainder of
// fewer than kFpsLanes points comes after, where only a strictly larger value wins.
constexpr int64_t kFpsLanes = 16;

// Point j's squared distance to the nearest pick so far, the newest being (px, py, pz), kept in dist[j].
__attribute__((always_inline)) inline float fps_distance(const float* __restrict__ x, const float* __restrict__ y,
                                                         const float* __restrict__ z, int64_t j, float px, float py,
                                                         float pz, bool first, float* __restrict__ dist) {
    const float dx = x[j] - px, dy = y[j] - py, dz = z[j] - pz;
    float d = dx * dx;
    d += dy * dy;
    d += dz * dz;
    const float m = (first || d < dist[j]) ? d : dist[j];
    dist[j] = m;
    return m;
}

GEOCLI_CLONES void fps_cloud(const float* __restrict__ x, const float* __restrict__ y, const float* __restrict__ z,
                             int64_t N, int64_t n, int64_t start, float* __restrict__ dist, int64_t* out) {
    const int64_t blocked = N - N % kFpsLanes;
    int64_t far = start;
    for (int64_t i = 0; i < n; ++i) {
        out[i] = far;
        const float px = x[far], py = y[far], pz = z[far];
        const bool first = i == 0;
        float lane_best[kFpsLanes];
        int32_t lane_index[kFpsLanes];
        for (int64_t l = 0; l < kFpsLanes; ++l) lane_best[l] = -1.0f, lane_index[l] = 0;
        for (int64_t block = 0; block < blocked; block += kFpsLanes) {
            for (int64_t l = 0; l < kFpsLanes; ++l) {
                const int64_t j = block + l;
                const float m = fps_distance(x, y, z, j, px, py, pz, first, dist);
                const bool larger = m > lane_best[l];
                lane_best[l] = larger ? m : lane_best[l];
                lane_index[l] = larger ? static_cast<int32_t>(j) : lane_index[l];
            }
        }
        float best = -1.0f;
        int64_t best_j = 0;
        for (int64_t l = 0; l < kFpsLanes; ++l) {
            if (lane_best[l] > best || (lane_best[l] == best && lane_index[l] < best_j)) {
                best = lane_best[l];
                best_j = lane_index[l];
            }
        }
        for (int64_t j = blocked; j < N; ++j) {
            const float m = fps_distance(x, y, z, j, px, py, pz, first, dist);
            if (m > best) {
                best = m;
                best_j = j;
            }
        }
        far = best_j;
    }
}

torch::Tensor farthest_point_sample(torch::Tensor points, int64_t n, torch::Tensor start) {
    TORCH_CHECK(points.device().is_cpu() && points.dim() == 3 && points.size(2) == 3, "fps: (B,N,3) CPU points expected");
    TORCH_CHECK(points.scalar_type() == torch::kFloat32, "fps: float32 points expected");
    TORCH_CHECK(start.scalar_type() == torch::kInt64 && start.dim() == 1 && start.size(0) == points.size(0), "fps: (B,) int64 start");
    const int64_t B = points.size(0), N = points.size(1);
    TORCH_CHECK(n >= 1 && n <= N, "fps: n must lie in [1, N]");
    TORCH_CHECK(N <= INT32_MAX, "fps: at most 2^31 - 1 points (lane indices are int32)");
    auto planes = points.permute({2, 0, 1}).contiguous();  // (3,B,N): each coordinate contiguous
    start = start.contiguous();
    const int64_t* s = start.data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b) TORCH_CHECK(s[b] >= 0 && s[b] < N, "fps: start index out of range");
    auto out = torch::empty({B, n}, points.options().dtype(torch::kInt64));
    const float* p = planes.data_ptr<float>();
    int64_t* o = out.data_ptr<int64_t>();
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> dist(N);
        for (int64_t b = begin; b < end; ++b) {
            fps_cloud(p + b * N, p + (B + b) * N, p + (2 * B + b) * N, N, n, s[b], dist.data(), o + b * n);
        }
    });
    return out;
}

// Batch norm (batch statistics or given ones) fused with the leaky ReLU that always follows it.
//
// Every layer of geocli's networks is Linear -> BatchNorm -> LeakyReLU over a (rows, C)
// channels-last tensor, and on a CPU the two elementwise modules cost more than the
// matrix product: torch runs the statistics, the normalisation and the activation as
// separate passes, each writing a full tensor, and as many again backwards. Here the
// forward reads x twice (statistics, then y = leaky(x * scale + shift)) and writes y
// once; the backward reads x and dy twice (two per-channel sums, then dx) and writes dx
// once. Nothing else of size rows x C is kept: the activation's side is recomputed from
// x, with the very expression of the forward, so forward and backward always agree.
//
// Sums are taken per chunk of kRows rows in float32 (the chunk is in cache, so the
// variance is a true second pass over it) and chunks are merged in double, in chunk
// order (Chan et al.'s pairwise update): results do not depend on the thread count.

constexpr int64_t kRows = 256;

template <typename T>
GEOCLI_CLONES void chunk_moments(const T* __restrict__ x, int64_t rows, int64_t C, float* __restrict__ mean,
                                 float* __restrict__ m2) {
    for (int64_t c = 0; c < C; ++c) mean[c] = 0.0f, m2[c] = 0.0f;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < C; ++c) mean[c] += as_float(x[r * C + c]);
    const float inv = 1.0f / static_cast<float>(rows);
    for (int64_t c = 0; c < C; ++c) mean[c] *= inv;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < C; ++c) {
            const float d = as_float(x[r * C + c]) - mean[c];
            m2[c] += d * d;
        }
}

template <typename T>
void moments_impl(const torch::Tensor& x, torch::Tensor& mean_out, torch::Tensor& var_out) {
    const int64_t R = x.size(0), C = x.size(1), chunks = (R + kRows - 1) / kRows;
    std::vector<float> means(chunks * C), m2s(chunks * C);
    const T* p = data<T>(x);
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t)
            chunk_moments<T>(p + t * kRows * C, std::min(kRows, R - t * kRows), C, &means[t * C], &m2s[t * C]);
    });
    float* mean = mean_out.data_ptr<float>();
    float* var = var_out.data_ptr<float>();
    for (int64_t c = 0; c < C; ++c) {
        double n = 0.0, mu = 0.0, m2 = 0.0;
        for (int64_t t = 0; t < chunks; ++t) {
            const double nb = static_cast<double>(std::min(kRows, R - t * kRows));
            const double delta = means[t * C + c] - mu, total = n + nb;
            mu += delta * nb / total;
            m2 += m2s[t * C + c] + delta * delta * n * nb / total;
            n = total;
        }
        mean[c] = static_cast<float>(mu);
        var[c] = static_cast<float>(m2 / n);  // biased, as batch norm normalises with
    }
}

// Per-channel mean and biased variance of a (rows, C) tensor, in float32.
std::vector<torch::Tensor> channel_moments(torch::Tensor x) {
    TORCH_CHECK(x.device().is_cpu() && x.dim() == 2 && x.size(0) >= 1, "channel_moments: (rows >= 1, C) CPU tensor expected");
    TORCH_CHECK(x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16,
                "channel_moments: float32 or bfloat16 expected");
    x = x.contiguous();
    auto mean = torch::empty({x.size(1)}, x.options().dtype(torch::kFloat32));
    auto var = torch::empty_like(mean);
    if (x.scalar_type() == torch::kFloat32) moments_impl<float>(x, mean, var);
    else moments_impl<uint16_t>(x, mean, var);
    return {mean, var};
}

template <typename T>
GEOCLI_CLONES void apply_rows(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t C,
                              const float* __restrict__ scale, const float* __restrict__ shift, float slope) {
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < C; ++c) {
            const float pre = as_float(x[r * C + c]) * scale[c] + shift[c];
            // leaky ReLU without a branch (AVX2 vectorises it): exactly pre, or exactly pre * slope
            y[r * C + c] = from_float<T>(std::max(pre, 0.0f) + slope * std::min(pre, 0.0f));
        }
}

// y = leaky_relu(x * scale + shift, slope), channel-wise; scale and shift fold the norm's statistics and affine.
torch::Tensor norm_act_forward(torch::Tensor x, torch::Tensor scale, torch::Tensor shift, double slope) {
    TORCH_CHECK(x.device().is_cpu() && x.dim() == 2, "norm_act_forward: (rows, C) CPU tensor expected");
    TORCH_CHECK(x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16,
                "norm_act_forward: float32 or bfloat16 expected");
    TORCH_CHECK(scale.scalar_type() == torch::kFloat32 && shift.scalar_type() == torch::kFloat32 &&
                scale.numel() == x.size(1) && shift.numel() == x.size(1), "norm_act_forward: float32 (C,) scale and shift");
    x = x.contiguous();
    scale = scale.contiguous();
    shift = shift.contiguous();
    auto y = torch::empty_like(x);
    const int64_t R = x.size(0), C = x.size(1), chunks = (R + kRows - 1) / kRows;
    const float* sc = scale.data_ptr<float>();
    const float* sh = shift.data_ptr<float>();
    const float s = static_cast<float>(slope);
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
            const int64_t rows = std::min(kRows, R - t * kRows);
            if (x.scalar_type() == torch::kFloat32)
                apply_rows<float>(x.data_ptr<float>() + t * kRows * C, y.data_ptr<float>() + t * kRows * C, rows, C, sc, sh, s);
            else
                apply_rows<uint16_t>(data<uint16_t>(x) + t * kRows * C, data<uint16_t>(y) + t * kRows * C, rows, C, sc, sh, s);
        }
    });
    return y;
}

// The activation's gradient, recomputed from x exactly as the forward decided it.
template <typename T>
inline float act_grad(const T* __restrict__ x, const T* __restrict__ dy, int64_t i, float sc, float sh, float slope) {
    const float positive = static_cast<float>(as_float(x[i]) * sc + sh > 0.0f);  // 1 or 0, without a branch
    return as_float(dy[i]) * (positive + (1.0f - positive) * slope);
}

template <typename T>
GEOCLI_CLONES void chunk_grad_sums(const T* __restrict__ x, const T* __restrict__ dy, int64_t rows, int64_t C,
                                   const float* __restrict__ scale, const float* __restrict__ shift,
                                   const float* __restrict__ mean, float slope, float* __restrict__ sum_g,
                                   float* __restrict__ sum_gx) {
    for (int64_t c = 0; c < C; ++c) sum_g[c] = 0.0f, sum_gx[c] = 0.0f;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < C; ++c) {
            const float g = act_grad<T>(x, dy, r * C + c, scale[c], shift[c], slope);
            sum_g[c] += g;
            sum_gx[c] += g * (as_float(x[r * C + c]) - mean[c]);
        }
}

template <typename T>
GEOCLI_CLONES void chunk_dx(const T* __restrict__ x, const T* __restrict__ dy, T* __restrict__ dx, int64_t rows, int64_t C,
                            const float* __restrict__ scale, const float* __restrict__ shift,
                            const float* __restrict__ mean, const float* __restrict__ a, const float* __restrict__ b,
                            float slope) {
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < C; ++c) {
            const float g = act_grad<T>(x, dy, r * C + c, scale[c], shift[c], slope);
            dx[r * C + c] = from_float<T>(scale[c] * (g - a[c] - (as_float(x[r * C + c]) - mean[c]) * b[c]));
        }
}

template <typename T>
void backward_stats_impl(const torch::Tensor& dy, const torch::Tensor& x, const float* scale, const float* shift,
                         const float* mean, float slope, std::vector<double>& sum_g, std::vector<double>& sum_gx) {
    const int64_t R = x.size(0), C = x.size(1), chunks = (R + kRows - 1) / kRows;
    std::vector<float> g(chunks * C), gx(chunks * C);
    const T* px = data<T>(x);
    const T* pd = data<T>(dy);
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t)
            chunk_grad_sums<T>(px + t * kRows * C, pd + t * kRows * C, std::min(kRows, R - t * kRows), C, scale, shift, mean,
                               slope, &g[t * C], &gx[t * C]);
    });
    for (int64_t t = 0; t < chunks; ++t)
        for (int64_t c = 0; c < C; ++c) sum_g[c] += g[t * C + c], sum_gx[c] += gx[t * C + c];
}

template <typename T>
void backward_dx_impl(const torch::Tensor& dy, const torch::Tensor& x, torch::Tensor& dx, const float* scale, const float* shift,
                      const float* mean, const float* a, const float* b, float slope) {
    const int64_t R = x.size(0), C = x.size(1), chunks = (R + kRows - 1) / kRows;
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t)
            chunk_dx<T>(data<T>(x) + t * kRows * C, data<T>(dy) + t * kRows * C, data<T>(dx) + t * kRows * C,
                        std::min(kRows, R - t * kRows), C, scale, shift, mean, a, b, slope);
    });
}

// Gradients of y = leaky(w * (x - mean) * invstd + bias) with batch statistics (mean, invstd of x itself):
// returns dx, dweight, dbias. With batch_stats false the statistics are constants (running ones).
std::vector<torch::Tensor> norm_act_backward(torch::Tensor dy, torch::Tensor x, torch::Tensor mean, torch::Tensor invstd,
                                             torch::Tensor weight, torch::Tensor bias, double slope, bool batch_stats) {
    TORCH_CHECK(dy.sizes() == x.sizes() && x.dim() == 2 && dy.scalar_type() == x.scalar_type(), "norm_act_backward: shapes differ");
    TORCH_CHECK(x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16,
                "norm_act_backward: float32 or bfloat16 expected");
    x = x.contiguous();
    dy = dy.contiguous();
    const int64_t R = x.size(0), C = x.size(1);
    auto f32 = [](const torch::Tensor& t) { return t.to(torch::kFloat32).contiguous(); };
    mean = f32(mean);
    invstd = f32(invstd);
    weight = f32(weight);
    bias = f32(bias);
    auto scale = weight * invstd;
    auto shift = bias - mean * scale;
    const float* sc = scale.data_ptr<float>();
    const float* sh = shift.data_ptr<float>();
    const float* mu = mean.data_ptr<float>();
    const float s = static_cast<float>(slope);
    std::vector<double> sum_g(C, 0.0), sum_gx(C, 0.0);
    if (x.scalar_type() == torch::kFloat32) backward_stats_impl<float>(dy, x, sc, sh, mu, s, sum_g, sum_gx);
    else backward_stats_impl<uint16_t>(dy, x, sc, sh, mu, s, sum_g, sum_gx);
    auto dweight = torch::empty({C}, mean.options());
    auto dbias = torch::empty({C}, mean.options());
    auto a = torch::zeros({C}, mean.options());
    auto b = torch::zeros({C}, mean.options());
    const float* is = invstd.data_ptr<float>();
    for (int64_t c = 0; c < C; ++c) {
        dweight.data_ptr<float>()[c] = static_cast<float>(sum_gx[c] * is[c]);
        dbias.data_ptr<float>()[c] = static_cast<float>(sum_g[c]);
        if (batch_stats) {  // the statistics' own gradient: dx = scale * (g - mean(g) - (x - mean) * invstd^2 * mean(g (x - mean)))
            a.data_ptr<float>()[c] = static_cast<float>(sum_g[c] / R);
            b.data_ptr<float>()[c] = static_cast<float>(sum_gx[c] / R * is[c] * is[c]);
        }
    }
    auto dx = torch::empty_like(x);
    if (x.scalar_type() == torch::kFloat32)
        backward_dx_impl<float>(dy, x, dx, sc, sh, mu, a.data_ptr<float>(), b.data_ptr<float>(), s);
    else
        backward_dx_impl<uint16_t>(dy, x, dx, sc, sh, mu, a.data_ptr<float>(), b.data_ptr<float>(), s);
    return {dx, dweight, dbias};
}

// The max over a neighbour axis of a norm + leaky ReLU: max_k leaky(scale * z + shift).
//
// The activation after an affine map is monotone in z: non-decreasing where the
// channel's scale is >= 0, non-increasing where it is negative. So the max over k of
// the activated values is the activated max (or min) of z, and the norm and activation
// run on the pooled rows, k times fewer. These kernels pick, per group and channel, the
// max of sign * z (first one on ties, NaN propagating) and, backwards, spread a
// gradient: dz = a + b * (z - mean) everywhere (the batch statistics' share, zero with
// fixed statistics) plus the pooled row's own gradient at the picked element.

template <typename T>
GEOCLI_CLONES void select_group(const T* __restrict__ z, int64_t K, int64_t C, const float* __restrict__ sign,
                                float* __restrict__ best, int32_t* __restrict__ arg) {
    for (int64_t c = 0; c < C; ++c) best[c] = sign[c] * as_float(z[c]), arg[c] = 0;
    for (int64_t kk = 1; kk < K; ++kk)
        for (int64_t c = 0; c < C; ++c) {
            const float v = sign[c] * as_float(z[kk * C + c]);
            const float b = best[c];
            const bool take = (v > b) | ((v != v) & (b == b));
            best[c] = take ? v : b;
            arg[c] = take ? static_cast<int32_t>(kk) : arg[c];
        }
    for (int64_t c = 0; c < C; ++c) best[c] *= sign[c];
}

template <typename T>
GEOCLI_CLONES void spread_group(const T* __restrict__ z, const int32_t* __restrict__ arg, const float* __restrict__ picked,
                                const float* __restrict__ mean, const float* __restrict__ a, const float* __restrict__ b,
                                T* __restrict__ dz, int64_t K, int64_t C) {
    for (int64_t kk = 0; kk < K; ++kk)
        for (int64_t c = 0; c < C; ++c) {
            const float own = static_cast<float>(arg[c] == kk) * picked[c];
            dz[kk * C + c] = from_float<T>(a[c] + b[c] * (as_float(z[kk * C + c]) - mean[c]) + own);
        }
}

// (G, K, C) values and a (C,) scale -> the picked values (G, C) float32 and their index in K (int32).
std::vector<torch::Tensor> signed_max_forward(torch::Tensor z, torch::Tensor scale) {
    TORCH_CHECK(z.device().is_cpu() && z.dim() == 3 && z.size(1) >= 1, "signed_max: (G, K >= 1, C) CPU tensor expected");
    TORCH_CHECK(z.scalar_type() == torch::kFloat32 || z.scalar_type() == torch::kBFloat16, "signed_max: float32 or bfloat16");
    TORCH_CHECK(scale.scalar_type() == torch::kFloat32 && scale.numel() == z.size(2), "signed_max: float32 (C,) scale");
    TORCH_CHECK(z.size(1) < (int64_t{1} << 31), "signed_max: too many rows per group");
    z = z.contiguous();
    const int64_t G = z.size(0), K = z.size(1), C = z.size(2);
    auto sign = torch::where(scale < 0, -1.0, 1.0).to(torch::kFloat32).contiguous();
    auto picked = torch::empty({G, C}, z.options().dtype(torch::kFloat32));
    auto arg = torch::empty({G, C}, z.options().dtype(torch::kInt32));
    const float* sg = sign.data_ptr<float>();
    at::parallel_for(0, G, 16, [&](int64_t begin, int64_t end) {
        for (int64_t g = begin; g < end; ++g) {
            if (z.scalar_type() == torch::kFloat32)
                select_group<float>(data<float>(z) + g * K * C, K, C, sg, picked.data_ptr<float>() + g * C, arg.data_ptr<int32_t>() + g * C);
            else
                select_group<uint16_t>(data<uint16_t>(z) + g * K * C, K, C, sg, picked.data_ptr<float>() + g * C,
                                       arg.data_ptr<int32_t>() + g * C);
        }
    });
    return {picked, arg};
}

// dz (G, K, C) in z's type: a + b * (z - mean), plus picked_grad at each group's picked element.
torch::Tensor signed_max_backward(torch::Tensor z, torch::Tensor arg, torch::Tensor picked_grad, torch::Tensor mean,
                                  torch::Tensor a, torch::Tensor b) {
    TORCH_CHECK(z.dim() == 3 && arg.dim() == 2 && arg.size(0) == z.size(0) && arg.size(1) == z.size(2) &&
                arg.scalar_type() == torch::kInt32 && picked_grad.sizes() == arg.sizes(), "signed_max_backward: shapes differ");
    auto f32 = [](const torch::Tensor& t) { return t.to(torch::kFloat32).contiguous(); };
    z = z.contiguous();
    arg = arg.contiguous();
    picked_grad = f32(picked_grad);
    mean = f32(mean);
    a = f32(a);
    b = f32(b);
    const int64_t G = z.size(0), K = z.size(1), C = z.size(2);
    auto dz = torch::empty_like(z);
    at::parallel_for(0, G, 16, [&](int64_t begin, int64_t end) {
        for (int64_t g = begin; g < end; ++g) {
            const int32_t* ag = arg.data_ptr<int32_t>() + g * C;
            const float* pg = picked_grad.data_ptr<float>() + g * C;
            if (z.scalar_type() == torch::kFloat32)
                spread_group<float>(data<float>(z) + g * K * C, ag, pg, mean.data_ptr<float>(), a.data_ptr<float>(),
                                    b.data_ptr<float>(), data<float>(dz) + g * K * C, K, C);
            else
                spread_group<uint16_t>(data<uint16_t>(z) + g * K * C, ag, pg, mean.data_ptr<float>(), a.data_ptr<float>(),
                                       b.data_ptr<float>(), data<uint16_t>(dz) + g * K * C, K, C);
        }
    });
    return dz;
}

// Max and mean over the points of a (B, N, C) tensor, the global pooling of every classifier.
//
// The torch route (amax and mean over N) reads the tensor twice and its backward builds
// a tie mask the size of the input, sums it, divides, and adds the two gradients, with a
// float32 copy of the bfloat16 tensor on the way: on the wide trunk (B 32, N 1,024, C
// 1,024) that was a third of a training step. Here the forward reads each element once,
// keeping the running max, its point index (int32) and a float32 sum per channel; the
// backward writes each element of the input's gradient once: the mean's share, plus the
// max's gradient at the point that held the max. The max follows torch.max (the first
// maximum wins, NaN propagates); the sum runs over the points in order, so the mean can
// differ from torch's in its last bit.
template <typename T>
GEOCLI_CLONES void max_mean_block(const T* x, int64_t N, int64_t C, int64_t c0, int64_t c1, T* maxed, int32_t* arg,
                                  T* mean) {
    float best[kChannelBlock], sum[kChannelBlock];
    int32_t where[kChannelBlock];
    const int64_t width = c1 - c0;
    for (int64_t c = 0; c < width; ++c) {
        best[c] = as_float(x[c0 + c]);
        sum[c] = 0.0f;
        where[c] = 0;
    }
    for (int64_t n = 0; n < N; ++n) {
        const T* row = x + n * C + c0;
        const int32_t index = static_cast<int32_t>(n);
        for (int64_t c = 0; c < width; ++c) {
            const float v = as_float(row[c]);
            const float b = best[c];
            const bool take = (v > b) | ((v != v) & (b == b));  // torch.max's rule, as in max_row
            best[c] = take ? v : b;
            where[c] = take ? index : where[c];
            sum[c] += v;
        }
    }
    const float inverse = 1.0f / static_cast<float>(N);
    for (int64_t c = 0; c < width; ++c) {
        maxed[c0 + c] = from_float<T>(best[c]);
        arg[c0 + c] = where[c];
        mean[c0 + c] = from_float<T>(sum[c] * inverse);
    }
}

// grad (N, C) of one batch element: mean_grad / N everywhere, plus max_grad at each channel's arg-max point.
template <typename T>
GEOCLI_CLONES void max_mean_spread(const float* max_grad, const float* mean_grad, const int32_t* arg, int64_t N, int64_t C,
                                   int64_t n0, int64_t n1, T* grad) {
    const float inverse = 1.0f / static_cast<float>(N);
    for (int64_t n = n0; n < n1; ++n) {
        T* row = grad + n * C;
        const int32_t index = static_cast<int32_t>(n);
        for (int64_t c = 0; c < C; ++c) {
            const float own = arg[c] == index ? max_grad[c] : 0.0f;
            row[c] = from_float<T>(mean_grad[c] * inverse + own);
        }
    }
}

// (B, N >= 1, C) -> the max over N (B, C), its point index (B, C) int32 and the mean over N (B, C).
std::vector<torch::Tensor> max_mean_forward(torch::Tensor x) {
    TORCH_CHECK(x.device().is_cpu() && x.dim() == 3 && x.size(1) >= 1, "max_mean: (B, N >= 1, C) CPU tensor expected");
    TORCH_CHECK(x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16, "max_mean: float32 or bfloat16");
    TORCH_CHECK(x.size(1) < (int64_t{1} << 31), "max_mean: too many points for int32 indices");
    x = x.contiguous();
    const int64_t B = x.size(0), N = x.size(1), C = x.size(2);
    auto maxed = torch::empty({B, C}, x.options());
    auto mean = torch::empty({B, C}, x.options());
    auto arg = torch::empty({B, C}, x.options().dtype(torch::kInt32));
    const int64_t blocks = (C + kChannelBlock - 1) / kChannelBlock;
    at::parallel_for(0, B * blocks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
            const int64_t b = t / blocks, c0 = (t % blocks) * kChannelBlock, c1 = std::min(C, c0 + kChannelBlock);
            int32_t* a = arg.data_ptr<int32_t>() + b * C;
            if (x.scalar_type() == torch::kFloat32)
                max_mean_block<float>(data<float>(x) + b * N * C, N, C, c0, c1, data<float>(maxed) + b * C, a,
                                      data<float>(mean) + b * C);
            else
                max_mean_block<uint16_t>(data<uint16_t>(x) + b * N * C, N, C, c0, c1, data<uint16_t>(maxed) + b * C, a,
                                         data<uint16_t>(mean) + b * C);
        }
    });
    return {maxed, arg, mean};
}

// The gradient (B, N, C), in the type of ``like``, of max_mean_forward's two outputs.
torch::Tensor max_mean_backward(torch::Tensor max_grad, torch::Tensor mean_grad, torch::Tensor arg, int64_t N,
                                torch::Tensor like) {
    TORCH_CHECK(arg.dim() == 2 && arg.scalar_type() == torch::kInt32 && max_grad.sizes() == arg.sizes() &&
                mean_grad.sizes() == arg.sizes() && N >= 1, "max_mean_backward: shapes differ");
    TORCH_CHECK(like.scalar_type() == torch::kFloat32 || like.scalar_type() == torch::kBFloat16, "max_mean_backward: float32 or bfloat16");
    max_grad = max_grad.to(torch::kFloat32).contiguous();
    mean_grad = mean_grad.to(torch::kFloat32).contiguous();
    arg = arg.contiguous();
    const int64_t B = arg.size(0), C = arg.size(1);
    auto grad = torch::empty({B, N, C}, like.options());
    constexpr int64_t kRowsPerTask = 64;
    const int64_t chunks = (N + kRowsPerTask - 1) / kRowsPerTask;
    at::parallel_for(0, B * chunks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
            const int64_t b = t / chunks, n0 = (t % chunks) * kRowsPerTask, n1 = std::min(N, n0 + kRowsPerTask);
            const float* mg = max_grad.data_ptr<float>() + b * C;
            const float* ag = mean_grad.data_ptr<float>() + b * C;
            const int32_t* a = arg.data_ptr<int32_t>() + b * C;
            if (like.scalar_type() == torch::kFloat32)
                max_mean_spread<float>(mg, ag, a, N, C, n0, n1, data<float>(grad) + b * N * C);
            else
                max_mean_spread<uint16_t>(mg, ag, a, N, C, n0, n1, data<uint16_t>(grad) + b * N * C);
        }
    });
    return grad;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    // Raised whenever a function's contract changes, so geocli can tell a stale build.
    m.attr("ABI") = 4;
    // Every kernel runs without the GIL (none touches a Python object): while the network's kernels
    // run, `classify --workers`' reading threads go on in Python, and a reader's FPS does not stall
    // the network's Python between layers.
    const auto nogil = pybind11::call_guard<pybind11::gil_scoped_release>();
    m.def("gather_max_forward", &gather_max_forward, "max over gathered neighbour rows, with arg-max point indices", nogil);
    m.def("farthest_point_sample", &farthest_point_sample, "greedy FPS from given start indices, torch route's ties", nogil);
    m.def("gather_max_backward", &gather_max_backward, "gradient of gather_max_forward, added at the arg-max points", nogil);
    m.def("channel_moments", &channel_moments, "per-channel mean and biased variance of a (rows, C) tensor", nogil);
    m.def("norm_act_forward", &norm_act_forward, "leaky_relu(x * scale + shift), channel-wise", nogil);
    m.def("norm_act_backward", &norm_act_backward, "gradients of batch norm fused with its leaky ReLU", nogil);
    m.def("signed_max_forward", &signed_max_forward, "per group and channel, the max of sign(scale) * z over K", nogil);
    m.def("signed_max_backward", &signed_max_backward, "gradient of a norm + activation taken after signed_max_forward", nogil);
    m.def("max_mean_forward", &max_mean_forward, "max (with arg-max point) and mean over the points of (B, N, C)", nogil);
    m.def("max_mean_backward", &max_mean_backward, "gradient of max_mean_forward's max and mean", nogil);
}
