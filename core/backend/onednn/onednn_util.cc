#include "core/backend/onednn/onednn_util.h"

#include "absl/strings/str_cat.h"

namespace cajal::onednn {

using dnnl::memory;

const dnnl::engine& Engine() {
  static const dnnl::engine* engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

memory::dims BatchDims(int64_t batch, const Shape& shape) {
  memory::dims dims = {batch};
  dims.insert(dims.end(), shape.begin(), shape.end());
  return dims;
}

memory::desc PlainDesc(const memory::dims& dims) {
  static constexpr memory::format_tag kTags[] = {
      memory::format_tag::undef, memory::format_tag::a,    memory::format_tag::ab,
      memory::format_tag::abc,   memory::format_tag::abcd, memory::format_tag::abcde};
  return memory::desc(dims, memory::data_type::f32, kTags[dims.size()]);
}

memory Wrap(const memory::desc& md, const float* data) {
  return memory(md, Engine(), const_cast<float*>(data));
}

absl::Status FromDnnlError(const dnnl::error& e, const char* what) {
  return absl::InvalidArgumentError(
      absl::StrCat("oneDNN cannot build ", what, ": ", e.what(), " (status ", e.status, ")"));
}

absl::Status Execute(dnnl::stream& stream, std::vector<Step>& steps, const char* what) {
  try {
    for (Step& s : steps) s.primitive.execute(stream, s.args);
    stream.wait();
  } catch (const dnnl::error& e) {
    return absl::InternalError(
        absl::StrCat("oneDNN failed running ", what, ": ", e.what(), " (status ", e.status, ")"));
  }
  return absl::OkStatus();
}

absl::Status PrimitiveKernel::Forward(int64_t /*step*/) { return Execute(stream_, forward, what_); }

absl::Status PrimitiveKernel::Backward() { return Execute(stream_, backward, what_); }

dnnl::memory AddWorkspace(const dnnl::primitive_desc_base& fwd_pd, bool train,
                          PrimitiveKernel* kernel, Step* fwd) {
  if (!train || fwd_pd.workspace_desc().get_size() == 0) return dnnl::memory();
  dnnl::memory workspace(fwd_pd.workspace_desc(), Engine());
  kernel->owned.push_back(workspace);
  fwd->args[DNNL_ARG_WORKSPACE] = workspace;
  return workspace;
}

}  // namespace cajal::onednn
