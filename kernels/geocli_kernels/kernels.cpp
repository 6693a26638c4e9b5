// CPU kernels of geocli's point networks: the fused neighbour max and farthest point sampling.
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
// Machine code: the hot loops are compiled for AVX-512, AVX2 and baseline x86-64 and
// chosen at load time (GCC target_clones), so a build made on one machine runs on
// another.

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

constexpr int64_t kChannelBlock = 64;

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GEOCLI_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define GEOCLI_CLONES
#endif

inline float as_float(float v) { return v; }
inline float as_float(c10::BFloat16 v) { return static_cast<float>(v); }

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
GEOCLI_CLONES void fps_cloud(const float* x, const float* y, const float* z, int64_t N, int64_t n, int64_t start,
                             float* dist, int64_t* out) {
    int64_t far = start;
    for (int64_t i = 0; i < n; ++i) {
        out[i] = far;
        const float px = x[far], py = y[far], pz = z[far];
        float best = -1.0f;
        int64_t best_j = 0;
        for (int64_t j = 0; j < N; ++j) {
            const float dx = x[j] - px, dy = y[j] - py, dz = z[j] - pz;
            float d = dx * dx;
            d += dy * dy;
            d += dz * dz;
            const float m = (i == 0 || d < dist[j]) ? d : dist[j];
            dist[j] = m;
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

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    // Raised whenever a function's contract changes, so geocli can tell a stale build.
    m.attr("ABI") = 2;
    m.def("gather_max_forward", &gather_max_forward, "max over gathered neighbour rows, with arg-max point indices");
    m.def("farthest_point_sample", &farthest_point_sample, "greedy FPS from given start indices, torch route's ties");
    m.def("gather_max_backward", &gather_max_backward, "gradient of gather_max_forward, added at the arg-max points");
}
