#include "core/backend/backend.h"

namespace cajal {

float* KernelArgs::value(std::string_view name) const {
  for (const ParamBinding& p : params) {
    if (p.name == name) return p.value;
  }
  return nullptr;
}

float* KernelArgs::grad(std::string_view name) const {
  for (const ParamBinding& p : params) {
    if (p.name == name) return p.grad;
  }
  return nullptr;
}

}  // namespace cajal
