#include "service/spec/spec_loader.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/util/status_macros.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"

namespace cajal {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;

constexpr int kMaxDepth = 32;
// Largest JSON a spec may expand to. YAML aliases repeat the node they name, so a small text
// (`k1: *big, k2: *big, ...`) can expand without bound; text within kMaxSpecBytes and without
// aliases stays far below this.
constexpr size_t kMaxExpandedBytes = 8 * kMaxSpecBytes;

absl::Status Bad(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path.empty() ? "spec" : path, ": ", what));
}

// (Fix, found by the hostile-input tests: a 135 kB spec of aliases to one long label took 1.3 GB
// and 18 s to expand, and a 1 MiB one could exhaust memory.)
absl::Status CheckExpansion(const std::string& out) {
  if (out.size() <= kMaxExpandedBytes) return absl::OkStatus();
  return Bad("", absl::StrCat("expands to more than ", kMaxExpandedBytes,
                              " bytes; YAML aliases (*name) repeat what they name, so write the "
                              "repeated parts out or use fewer aliases"));
}

std::string Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : absl::StrCat(path, ".", key);
}

std::string JsonQuote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          absl::StrAppend(&out, "\\u00", absl::Hex(c, absl::kZeroPad2));
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// The common prefix of an enum's value names: "ACTIVATION_KIND_" from ACTIVATION_KIND_UNSPECIFIED.
std::string EnumPrefix(const EnumDescriptor* e) {
  const std::string first = e->value(0)->name();
  const size_t pos = first.rfind("UNSPECIFIED");
  return pos == std::string::npos ? "" : first.substr(0, pos);
}

absl::StatusOr<std::string> EnumValue(const FieldDescriptor* f, const std::string& text,
                                      const std::string& path) {
  const EnumDescriptor* e = f->enum_type();
  const std::string prefix = EnumPrefix(e);
  std::string upper = absl::AsciiStrToUpper(text);
  for (char& c : upper) {
    if (c == '-') c = '_';
  }
  for (const std::string& candidate : {prefix + upper, text}) {
    const auto* v = e->FindValueByName(candidate);
    if (v != nullptr && v->number() != 0) return v->name();
  }
  std::vector<std::string> known;
  for (int i = 1; i < e->value_count(); ++i) {
    known.push_back(absl::AsciiStrToLower(e->value(i)->name().substr(prefix.size())));
  }
  return Bad(
      path, absl::StrCat("unknown value \"", text, "\" (known: ", absl::StrJoin(known, ", "), ")"));
}

// What a scalar field holds, for messages: "expected an integer, got a map".
// (Fix: the message used cpp_type_name(), which read "expected a int32" / "a enum".)
const char* ScalarKind(const FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_ENUM:
      return "an enum value";
    case FieldDescriptor::CPPTYPE_STRING:
      return "a string";
    case FieldDescriptor::CPPTYPE_BOOL:
      return "true or false";
    case FieldDescriptor::CPPTYPE_FLOAT:
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return "a number";
    default:
      return "an integer";
  }
}

absl::StatusOr<std::string> Scalar(const FieldDescriptor* f, const YAML::Node& node,
                                   const std::string& path) {
  if (!node.IsScalar()) {
    return Bad(path, absl::StrCat("expected ", ScalarKind(f), ", got a ",
                                  node.IsMap()        ? "map"
                                  : node.IsSequence() ? "list"
                                                      : "null"));
  }
  const std::string text = node.Scalar();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_ENUM: {
      ASSIGN_OR_RETURN(std::string name, EnumValue(f, text, path));
      return JsonQuote(name);
    }
    case FieldDescriptor::CPPTYPE_STRING:
      return JsonQuote(text);
    case FieldDescriptor::CPPTYPE_BOOL:
      if (text == "true" || text == "True" || text == "TRUE") return std::string("true");
      if (text == "false" || text == "False" || text == "FALSE") return std::string("false");
      return Bad(path, absl::StrCat("expected true or false, got \"", text, "\""));
    case FieldDescriptor::CPPTYPE_FLOAT:
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      const std::string lower = absl::AsciiStrToLower(text);
      if (lower == "nan" || lower == ".nan") return std::string("\"NaN\"");
      if (lower == "inf" || lower == ".inf" || lower == "+.inf" || lower == "infinity") {
        return std::string("\"Infinity\"");
      }
      if (lower == "-inf" || lower == "-.inf" || lower == "-infinity") {
        return std::string("\"-Infinity\"");
      }
      double v;
      if (!absl::SimpleAtod(text, &v)) {
        return Bad(path, absl::StrCat("expected a number, got \"", text, "\""));
      }
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT && std::isfinite(v) &&
          std::abs(v) > 3.4e38) {
        return Bad(path, absl::StrCat("number out of range: ", text));
      }
      return absl::StrCat("\"", text, "\"");
    }
    default: {  // integers
      // (Fix: uint64 fields such as training.seed took only values up to INT64_MAX.)
      uint64_t u;
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_UINT64 && absl::SimpleAtoi(text, &u)) {
        return absl::StrCat("\"", u, "\"");
      }
      int64_t v;
      if (!absl::SimpleAtoi(text, &v)) {
        double d;
        if (absl::SimpleAtod(text, &d)) {
          // (Fix: a whole number too large for 64 bits read "expected an integer".)
          if (std::isfinite(d) && d == std::floor(d) && std::abs(d) >= 9223372036854775808.0) {
            return Bad(path, absl::StrCat("integer out of range: ", text));
          }
          return Bad(path, absl::StrCat("expected an integer, got ", text));
        }
        return Bad(path, absl::StrCat("expected an integer, got \"", text, "\""));
      }
      const bool is32 = f->cpp_type() == FieldDescriptor::CPPTYPE_INT32 ||
                        f->cpp_type() == FieldDescriptor::CPPTYPE_UINT32;
      const bool is_unsigned = f->cpp_type() == FieldDescriptor::CPPTYPE_UINT32 ||
                               f->cpp_type() == FieldDescriptor::CPPTYPE_UINT64;
      if ((is32 && (v > INT32_MAX || v < INT32_MIN)) || (is_unsigned && v < 0)) {
        return Bad(path, absl::StrCat("integer out of range: ", text));
      }
      return absl::StrCat("\"", v, "\"");
    }
  }
}

absl::Status EmitMessage(const YAML::Node& node, const Descriptor* d, const std::string& path,
                         int depth, std::string* out);

absl::Status EmitValue(const FieldDescriptor* f, const YAML::Node& node, const std::string& path,
                       int depth, std::string* out) {
  if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    return EmitMessage(node, f->message_type(), path, depth + 1, out);
  }
  ASSIGN_OR_RETURN(std::string v, Scalar(f, node, path));
  out->append(v);
  return CheckExpansion(*out);
}

absl::Status EmitMessage(const YAML::Node& node, const Descriptor* d, const std::string& path,
                         int depth, std::string* out) {
  if (depth > kMaxDepth) return Bad(path, "nested too deeply");
  RETURN_IF_ERROR(CheckExpansion(*out));
  if (node.IsNull()) {
    out->append("{}");
    return absl::OkStatus();
  }
  if (!node.IsMap()) {
    return Bad(path, absl::StrCat("expected a map of fields, got ",
                                  node.IsSequence() ? "a list" : "\"" + node.Scalar() + "\""));
  }
  out->append("{");
  bool first = true;
  std::map<const google::protobuf::OneofDescriptor*, std::string> oneofs;
  // (Fix: a field given twice, as `epochs: 1, epochs: 2` or `batch_size` and `batchSize`, was
  // passed on twice and the JSON parser silently kept one.)
  std::map<const FieldDescriptor*, std::string> seen;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) return Bad(path, "field names must be strings");
    const std::string key = kv.first.Scalar();
    const std::string field_path = Join(path, key);
    const FieldDescriptor* f = d->FindFieldByName(key);
    if (f == nullptr) f = d->FindFieldByCamelcaseName(key);
    if (f == nullptr) {
      std::vector<std::string> known;
      for (int i = 0; i < d->field_count(); ++i) known.push_back(d->field(i)->name());
      return Bad(field_path,
                 absl::StrCat("unknown field (known: ", absl::StrJoin(known, ", "), ")"));
    }
    if (auto [it, inserted] = seen.emplace(f, key); !inserted) {
      return Bad(field_path, it->second == key
                                 ? std::string("set twice")
                                 : absl::StrCat("set twice (also as ", it->second, ")"));
    }
    if (const auto* oneof = f->real_containing_oneof()) {
      auto [it, inserted] = oneofs.emplace(oneof, key);
      if (!inserted) {
        return Bad(path, absl::StrCat("sets both ", it->second, " and ", key, "; set exactly one"));
      }
    }
    if (!first) out->append(",");
    first = false;
    absl::StrAppend(out, JsonQuote(f->name()), ":");
    const YAML::Node& value = kv.second;
    if (f->is_map()) {
      if (!value.IsMap() && !value.IsNull()) return Bad(field_path, "expected a map");
      out->append("{");
      bool first_entry = true;
      if (value.IsMap()) {
        for (const auto& entry : value) {
          if (!entry.first.IsScalar() || !entry.second.IsScalar()) {
            return Bad(field_path, "expected string keys and values");
          }
          if (!first_entry) out->append(",");
          first_entry = false;
          absl::StrAppend(out, JsonQuote(entry.first.Scalar()), ":",
                          JsonQuote(entry.second.Scalar()));
          RETURN_IF_ERROR(CheckExpansion(*out));
        }
      }
      out->append("}");
    } else if (f->is_repeated()) {
      if (!value.IsSequence() && !value.IsNull()) return Bad(field_path, "expected a list");
      out->append("[");
      for (size_t i = 0; value.IsSequence() && i < value.size(); ++i) {
        if (i > 0) out->append(",");
        RETURN_IF_ERROR(EmitValue(f, value[i], Join(field_path, std::to_string(i)), depth, out));
      }
      out->append("]");
    } else {
      RETURN_IF_ERROR(EmitValue(f, value, field_path, depth, out));
    }
  }
  out->append("}");
  return absl::OkStatus();
}

// Applies "a.b.0.c=value" to the YAML tree.
absl::Status ApplyOverride(const std::string& assignment, YAML::Node* root) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    return absl::InvalidArgumentError(absl::StrCat("--set ", assignment, ": expected path=value"));
  }
  const std::string path = assignment.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("--set ", path, ": bad value: ", e.msg));
  }
  const std::vector<std::string> parts = absl::StrSplit(path, '.');
  YAML::Node cur = *root;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    const bool last = i + 1 == parts.size();
    const std::string so_far = absl::StrJoin(parts.begin(), parts.begin() + i + 1, ".");
    if (part.empty())
      return absl::InvalidArgumentError(absl::StrCat("--set ", path, ": empty path element"));
    size_t index;
    if (cur.IsSequence() && absl::SimpleAtoi(part, &index)) {
      if (index > cur.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--set ", path, ": ", so_far, " is past the end of a list of ", cur.size()));
      }
      if (index == cur.size()) cur.push_back(YAML::Node(YAML::NodeType::Map));
      if (last) {
        cur[index] = value;
      } else {
        YAML::Node next = cur[index];
        cur.reset(next);
      }
      continue;
    }
    if (cur.IsNull()) cur = YAML::Node(YAML::NodeType::Map);
    if (!cur.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--set ", path, ": ", so_far, " is inside a value that is not a map"));
    }
    if (last) {
      cur[part] = value;
    } else {
      if (!cur[part] || cur[part].IsNull()) {
        // A numeric next element means a list; anything else a map.
        size_t ignored;
        cur[part] = YAML::Node(absl::SimpleAtoi(parts[i + 1], &ignored) ? YAML::NodeType::Sequence
                                                                        : YAML::NodeType::Map);
      }
      YAML::Node next = cur[part];
      cur.reset(next);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::JobSpec> ParseSpec(const std::string& text,
                                      const std::vector<std::string>& overrides) {
  if (text.size() > kMaxSpecBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec: ", text.size(), " bytes is larger than the limit of ", kMaxSpecBytes));
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("spec: not valid YAML or JSON at line ",
                                                   e.mark.line + 1, ", column ", e.mark.column + 1,
                                                   ": ", e.msg));
  }
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) return absl::InvalidArgumentError("spec: expected a map of fields at the top");
  for (const std::string& o : overrides) RETURN_IF_ERROR(ApplyOverride(o, &root));
  std::string json;
  RETURN_IF_ERROR(EmitMessage(root, v1::JobSpec::descriptor(), "", 0, &json));
  v1::JobSpec spec;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &spec, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("spec: ", status.message().as_string()));
  }
  return spec;
}

absl::StatusOr<v1::JobSpec> LoadSpecFile(const std::string& path,
                                         const std::vector<std::string>& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("--spec ", path, ": cannot open: ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  absl::StatusOr<v1::JobSpec> spec = ParseSpec(text.str(), overrides);
  if (!spec.ok()) {
    return absl::Status(spec.status().code(), absl::StrCat(path, ": ", spec.status().message()));
  }
  return spec;
}

std::string SpecToJson(const v1::JobSpec& spec) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(spec, &json, options);
  return json;
}

}  // namespace cajal
