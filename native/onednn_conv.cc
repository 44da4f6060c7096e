// jconv's oneDNN convolutions, called from XLA through its FFI.
//
// One handler, `JconvOnednnConv`, runs one of the three passes of a 2-D
// convolution on float32 channels-last arrays (x: NHWC, kernel: HWIO with
// O = groups * O_per_group, y: NHWC) as a oneDNN primitive:
//
//   pass 0, forward:        (x, kernel) -> y
//   pass 1, input gradient: (dy, kernel) -> dx
//   pass 2, kernel grad:    (x, dy) -> dkernel
//
// Every size comes from the buffers' shapes and is checked against the
// attributes (strides, dilation, pads) before oneDNN sees it; a mismatch, a
// oneDNN error or an allocation failure is returned as an XLA FFI error,
// never an abort. jconv's Python side (`jconv/_onednn.py`) validates the
// same arguments first, so these checks are the second line.
//
// Primitives (and the weight reorders they need) are created once per
// shape, pass and attributes and cached: creating one costs 0.1-5 ms.
// Scratch memory is user-managed, one growing buffer per calling thread.
// oneDNN documents its library-managed scratchpad, with its default build
// (DNNL_ENABLE_CONCURRENT_EXEC=OFF), as one buffer common to all primitives,
// each of which must run on the thread that created it; XLA runs this
// handler on any of its worker threads, two convolutions at once where they
// are independent (an input and a kernel gradient). The user-managed mode is
// thread-safe as long as no two executions share a scratchpad buffer.

#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using dims = dnnl::memory::dims;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

constexpr int64_t kForward = 0;
constexpr int64_t kInputGrad = 1;
constexpr int64_t kKernelGrad = 2;

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// The sizes of one convolution, as read from the buffers. A 2D one has a
// depth axis of 1 (d, kd, od, sd, dd 1; front, back 0) and `rank` 2.
struct Geometry {
  int64_t n, h, w, c, kh, kw, c_group, c_out, oh, ow;
  int64_t sh, sw, dh, dw, top, bottom, left, right, groups;
  int64_t pass, any_weights;
  int64_t rank = 2, d = 1, kd = 1, od = 1, sd = 1, dd = 1, front = 0, back = 0;

  std::vector<int64_t> Key() const {
    return {n,      h,     w,     c,      kh,     kw,          c_group, c_out,
            oh,     ow,    sh,    sw,     dh,     dw,          top,     bottom,
            left,   right, groups, pass,  any_weights, rank,   d,       kd,
            od,     sd,    dd,    front,  back};
  }

  // The spatial sizes `(d, h, w)` of a 3D convolution, `(h, w)` of a 2D one.
  dims Spatial(int64_t depth, int64_t height, int64_t width) const {
    return rank == 3 ? dims{depth, height, width} : dims{height, width};
  }
};

// The kernel as it lies in memory (HWIO or DHWIO, O = groups *
// O_per_group), in oneDNN's logical order (OIHW, or GOIHW with groups).
dnnl::memory::desc KernelDesc(const Geometry& g, bool any) {
  const dims spatial = g.Spatial(g.kd, g.kh, g.kw);
  if (g.groups == 1) {
    dims shape{g.c_out, g.c_group};
    shape.insert(shape.end(), spatial.begin(), spatial.end());
    return any ? dnnl::memory::desc(shape, dt::f32, tag::any)
                : dnnl::memory::desc(shape, dt::f32,
                                     g.rank == 3 ? tag::dhwio : tag::hwio);
  }
  const int64_t o_group = g.c_out / g.groups;
  dims shape{g.groups, o_group, g.c_group};
  shape.insert(shape.end(), spatial.begin(), spatial.end());
  if (any) return dnnl::memory::desc(shape, dt::f32, tag::any);
  const int64_t per_w = g.c_group * g.c_out;
  dims strides{o_group, 1, g.c_out};
  if (g.rank == 3) strides.push_back(g.kh * g.kw * per_w);
  strides.push_back(g.kw * per_w);
  strides.push_back(per_w);
  return dnnl::memory::desc(shape, dt::f32, strides);
}

// A cached primitive: the pass, the kernel's layout in memory and in the
// primitive, and the reorder between them where they differ.
struct Entry {
  dnnl::primitive primitive;
  dnnl::memory::desc image;   // x or dx: NHWC
  dnnl::memory::desc output;  // y or dy: NHWC
  dnnl::memory::desc user_kernel;
  dnnl::memory::desc kernel;  // the primitive's
  dnnl::memory::desc scratchpad;
  bool reorder_kernel = false;
  dnnl::reorder kernel_reorder;
};

// The kernel as a backward primitive reads it (input gradient) or writes it
// (kernel gradient).
dnnl::memory::desc PrimitiveKernel(
    const dnnl::convolution_backward_data::primitive_desc& pd) {
  return pd.weights_desc();
}
dnnl::memory::desc PrimitiveKernel(
    const dnnl::convolution_backward_weights::primitive_desc& pd) {
  return pd.diff_weights_desc();
}

// Fills `entry` with the backward primitive `Primitive` (input or kernel
// gradient) of the convolution `forward` describes.
template <typename Primitive>
void Backward(Entry& entry, const dnnl::memory::desc& image,
              const dnnl::memory::desc& kernel, const dnnl::memory::desc& output,
              const dims& strides, const dims& dilation, const dims& low,
              const dims& high,
              const dnnl::convolution_forward::primitive_desc& forward,
              const dnnl::primitive_attr& attr) {
  typename Primitive::primitive_desc pd(
      Engine(), dnnl::algorithm::convolution_direct, image, kernel, output,
      strides, dilation, low, high, forward, attr);
  entry.primitive = Primitive(pd);
  entry.kernel = PrimitiveKernel(pd);
  entry.scratchpad = pd.scratchpad_desc();
}

std::shared_ptr<Entry> Create(const Geometry& g) {
  const tag layout = g.rank == 3 ? tag::ndhwc : tag::nhwc;
  dims image_shape{g.n, g.c}, output_shape{g.n, g.c_out};
  for (int64_t v : g.Spatial(g.d, g.h, g.w)) image_shape.push_back(v);
  for (int64_t v : g.Spatial(g.od, g.oh, g.ow)) output_shape.push_back(v);
  dnnl::memory::desc image(image_shape, dt::f32, layout);
  dnnl::memory::desc output(output_shape, dt::f32, layout);
  dnnl::memory::desc user_kernel = KernelDesc(g, false);
  dnnl::memory::desc kernel = KernelDesc(g, g.any_weights != 0);
  dims strides = g.Spatial(g.sd, g.sh, g.sw);
  // oneDNN counts dilation from 0
  dims dilation = g.Spatial(g.dd - 1, g.dh - 1, g.dw - 1);
  dims low = g.Spatial(g.front, g.top, g.left);
  dims high = g.Spatial(g.back, g.bottom, g.right);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const auto direct = dnnl::algorithm::convolution_direct;

  auto entry = std::make_shared<Entry>();
  entry->image = image;
  entry->output = output;
  entry->user_kernel = user_kernel;
  const auto prop = g.pass == kForward ? dnnl::prop_kind::forward_inference
                                       : dnnl::prop_kind::forward_training;
  dnnl::convolution_forward::primitive_desc forward(
      Engine(), prop, direct, image, kernel, output, strides, dilation, low,
      high, attr);
  if (g.pass == kForward) {
    entry->primitive = dnnl::convolution_forward(forward);
    entry->kernel = forward.weights_desc();
    entry->scratchpad = forward.scratchpad_desc();
  } else if (g.pass == kInputGrad) {
    Backward<dnnl::convolution_backward_data>(*entry, image, kernel, output,
                                              strides, dilation, low, high,
                                              forward, attr);
  } else {
    Backward<dnnl::convolution_backward_weights>(*entry, image, kernel, output,
                                                 strides, dilation, low, high,
                                                 forward, attr);
  }
  entry->reorder_kernel = entry->kernel != user_kernel;
  if (entry->reorder_kernel) {
    // Forward and input gradient read the kernel: user -> primitive layout.
    // The kernel gradient writes it: primitive -> user layout.
    const bool reads = g.pass != kKernelGrad;
    const auto& from = reads ? user_kernel : entry->kernel;
    const auto& to = reads ? entry->kernel : user_kernel;
    entry->kernel_reorder =
        dnnl::reorder(dnnl::reorder::primitive_desc(Engine(), from, Engine(), to));
  }
  return entry;
}

std::mutex cache_mutex;
std::map<std::vector<int64_t>, std::shared_ptr<Entry>> cache;

std::shared_ptr<Entry> Lookup(const Geometry& g) {
  auto key = g.Key();
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto found = cache.find(key);
    if (found != cache.end()) return found->second;
  }
  auto entry = Create(g);  // outside the lock: creation may take milliseconds
  std::lock_guard<std::mutex> lock(cache_mutex);
  return cache.emplace(std::move(key), std::move(entry)).first->second;
}

// One 64-byte-aligned scratch buffer per calling thread, grown on demand.
char* Scratch(size_t bytes) {
  thread_local std::unique_ptr<char[]> buffer;
  thread_local size_t size = 0;
  if (size < bytes + 64) {
    buffer.reset();
    size = 0;
    buffer.reset(new char[bytes + 64]);
    size = bytes + 64;
  }
  auto address = reinterpret_cast<uintptr_t>(buffer.get());
  return reinterpret_cast<char*>((address + 63) & ~uintptr_t(63));
}

size_t Aligned(size_t bytes) { return (bytes + 63) & ~size_t(63); }

int64_t OutputSize(int64_t size, int64_t k, int64_t stride, int64_t low,
                   int64_t high, int64_t dilation) {
  const int64_t span = (k - 1) * dilation + 1;
  const int64_t padded = size + low + high;
  if (padded < span) return 0;
  return (padded - span) / stride + 1;
}

ffi::Error Invalid(const std::string& message) {
  return ffi::Error::InvalidArgument("jconv oneDNN convolution: " + message);
}

// One pass of the convolution of rank R - 2 (2 or 3 spatial axes) whose
// operands and result are `a`, `b` and `out`, channels last.
template <size_t R>
ffi::Error Convolve(ffi::Buffer<ffi::F32, R> a, ffi::Buffer<ffi::F32, R> b,
                    ffi::ResultBuffer<ffi::F32, R> out, int64_t pass,
                    ffi::Span<const int64_t> strides,
                    ffi::Span<const int64_t> dilation,
                    ffi::Span<const int64_t> pads, int64_t groups,
                    int64_t any_weights) {
  constexpr size_t r = R - 2;  // spatial axes
  if (pass < kForward || pass > kKernelGrad) return Invalid("unknown pass");
  if (strides.size() != r || dilation.size() != r || pads.size() != 2 * r)
    return Invalid("strides and dilation take one value per spatial axis, pads two");
  // The image (x or dx), the output (y or dy) and the kernel, by pass.
  auto image = pass == kInputGrad ? out->dimensions() : a.dimensions();
  auto output = pass == kForward     ? out->dimensions()
                : pass == kInputGrad ? a.dimensions()
                                     : b.dimensions();
  auto kernel = pass == kKernelGrad ? out->dimensions() : b.dimensions();
  // The last two spatial axes are (h, w); a 3D convolution's first is d.
  const size_t o = r - 2;  // offset of h among the spatial axes
  Geometry g{image[0],           image[1 + o],         image[2 + o],
             image[R - 1],       kernel[o],            kernel[1 + o],
             kernel[R - 2],      kernel[R - 1],        output[1 + o],
             output[2 + o],      strides[o],           strides[1 + o],
             dilation[o],        dilation[1 + o],      pads[2 * o],
             pads[2 * o + 1],    pads[2 * o + 2],      pads[2 * o + 3],
             groups,             pass,                 any_weights};
  if (r == 3) {
    g.rank = 3;
    g.d = image[1];
    g.kd = kernel[0];
    g.od = output[1];
    g.sd = strides[0];
    g.dd = dilation[0];
    g.front = pads[0];
    g.back = pads[1];
  }
  for (int64_t v : {g.n, g.h, g.w, g.c, g.kh, g.kw, g.c_group, g.c_out, g.oh,
                    g.ow, g.sh, g.sw, g.dh, g.dw, g.groups, g.d, g.kd, g.od,
                    g.sd, g.dd})
    if (v < 1) return Invalid("every size, stride, dilation and group count must be positive");
  for (int64_t v : {g.top, g.bottom, g.left, g.right, g.front, g.back})
    if (v < 0) return Invalid("pads must not be negative");
  if (output[0] != g.n) return Invalid("image and output batch sizes differ");
  if (output[R - 1] != g.c_out) return Invalid("output channels differ from the kernel's");
  if (g.c_group * g.groups != g.c || g.c_out % g.groups != 0)
    return Invalid("groups must divide the input and output channels");
  if (OutputSize(g.h, g.kh, g.sh, g.top, g.bottom, g.dh) != g.oh ||
      OutputSize(g.w, g.kw, g.sw, g.left, g.right, g.dw) != g.ow ||
      OutputSize(g.d, g.kd, g.sd, g.front, g.back, g.dd) != g.od)
    return Invalid("the output size does not follow from the input, kernel, strides, "
                   "dilation and pads");
  try {
    auto entry = Lookup(g);
    auto& engine = Engine();
    const size_t kernel_bytes = entry->reorder_kernel ? entry->kernel.get_size() : 0;
    char* scratch = Scratch(Aligned(kernel_bytes) + entry->scratchpad.get_size());
    dnnl::stream stream(engine);
    void* image_data = pass == kInputGrad ? out->untyped_data() : a.untyped_data();
    void* output_data = pass == kForward     ? out->untyped_data()
                        : pass == kInputGrad ? a.untyped_data()
                                             : b.untyped_data();
    void* kernel_data = pass == kKernelGrad ? out->untyped_data() : b.untyped_data();
    dnnl::memory image_memory(entry->image, engine, image_data);
    dnnl::memory output_memory(entry->output, engine, output_data);
    dnnl::memory user_kernel(entry->user_kernel, engine, kernel_data);
    dnnl::memory kernel_memory =
        entry->reorder_kernel ? dnnl::memory(entry->kernel, engine, scratch) : user_kernel;
    dnnl::memory scratchpad(entry->scratchpad, engine, scratch + Aligned(kernel_bytes));
    if (entry->reorder_kernel && pass != kKernelGrad)
      entry->kernel_reorder.execute(stream, user_kernel, kernel_memory);
    if (pass == kForward) {
      entry->primitive.execute(stream, {{DNNL_ARG_SRC, image_memory},
                                        {DNNL_ARG_WEIGHTS, kernel_memory},
                                        {DNNL_ARG_DST, output_memory},
                                        {DNNL_ARG_SCRATCHPAD, scratchpad}});
    } else if (pass == kInputGrad) {
      entry->primitive.execute(stream, {{DNNL_ARG_DIFF_DST, output_memory},
                                        {DNNL_ARG_WEIGHTS, kernel_memory},
                                        {DNNL_ARG_DIFF_SRC, image_memory},
                                        {DNNL_ARG_SCRATCHPAD, scratchpad}});
    } else {
      entry->primitive.execute(stream, {{DNNL_ARG_SRC, image_memory},
                                        {DNNL_ARG_DIFF_DST, output_memory},
                                        {DNNL_ARG_DIFF_WEIGHTS, kernel_memory},
                                        {DNNL_ARG_SCRATCHPAD, scratchpad}});
      if (entry->reorder_kernel)
        entry->kernel_reorder.execute(stream, kernel_memory, user_kernel);
    }
    stream.wait();
  } catch (const dnnl::error& error) {
    return ffi::Error::Internal(std::string("oneDNN: ") + error.what());
  } catch (const std::bad_alloc&) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted,
                      "jconv oneDNN convolution: out of memory for its scratch buffer");
  } catch (const std::exception& error) {
    return ffi::Error::Internal(std::string("jconv oneDNN convolution: ") + error.what());
  }
  return ffi::Error::Success();
}

}  // namespace

// XLA_FFI_DEFINE_HANDLER_SYMBOL adds no visibility attribute: declared here so
// that the library, built with -fvisibility=hidden, exports them.
extern "C" __attribute__((visibility("default"))) XLA_FFI_Error* JconvOnednnConv(
    XLA_FFI_CallFrame* call_frame);
extern "C" __attribute__((visibility("default"))) XLA_FFI_Error* JconvOnednnConv3d(
    XLA_FFI_CallFrame* call_frame);

// The 2D handler (4-D buffers) and the 3D one (5-D buffers).
using BufferR5 = ffi::Buffer<ffi::F32, 5>;
XLA_FFI_DEFINE_HANDLER_SYMBOL(JconvOnednnConv, Convolve<4>,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::BufferR4<ffi::F32>>()
                                  .Arg<ffi::BufferR4<ffi::F32>>()
                                  .Ret<ffi::BufferR4<ffi::F32>>()
                                  .Attr<int64_t>("pass")
                                  .Attr<ffi::Span<const int64_t>>("strides")
                                  .Attr<ffi::Span<const int64_t>>("dilation")
                                  .Attr<ffi::Span<const int64_t>>("pads")
                                  .Attr<int64_t>("groups")
                                  .Attr<int64_t>("any_weights"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(JconvOnednnConv3d, Convolve<5>,
                              ffi::Ffi::Bind()
                                  .Arg<BufferR5>()
                                  .Arg<BufferR5>()
                                  .Ret<BufferR5>()
                                  .Attr<int64_t>("pass")
                                  .Attr<ffi::Span<const int64_t>>("strides")
                                  .Attr<ffi::Span<const int64_t>>("dilation")
                                  .Attr<ffi::Span<const int64_t>>("pads")
                                  .Attr<int64_t>("groups")
                                  .Attr<int64_t>("any_weights"));

// "major.minor.patch" of the oneDNN library loaded.
extern "C" __attribute__((visibility("default"))) const char* JconvOnednnVersion() {
  static char text[32];
  const dnnl_version_t* v = dnnl::version();
  std::snprintf(text, sizeof text, "%d.%d.%d", v->major, v->minor, v->patch);
  return text;
}

// 1 where oneDNN runs its AVX-512 kernels here (the CPU has them and
// ONEDNN_MAX_CPU_ISA allows them), else 0: `impl="auto"`'s rule differs.
extern "C" __attribute__((visibility("default"))) int JconvOnednnAvx512() {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto avx512 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
  return (isa & avx512) == avx512 ? 1 : 0;
}
