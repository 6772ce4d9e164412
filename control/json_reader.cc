// The JSON half of document_reader.h: simdjson's DOM converted into Value trees.

#include <simdjson.h>

#include <algorithm>
#include <string>

#include "control/document_reader.h"

namespace capstan::control {

namespace {

class Converter {
 public:
  explicit Converter(const ReaderLimits& limits) : limits_(limits) {}

  Result<Value> convert(simdjson::dom::element element, size_t depth = 0) {
    if (++values_ > limits_.maxValuesPerDocument) {
      return Error("document has more than " + std::to_string(limits_.maxValuesPerDocument) +
                   " values");
    }
    switch (element.type()) {
      case simdjson::dom::element_type::NULL_VALUE:
        return Value::null();
      case simdjson::dom::element_type::BOOL:
        return Value(bool(element.get_bool().value_unsafe()));
      case simdjson::dom::element_type::INT64:
        return Value(int64_t(element.get_int64().value_unsafe()));
      case simdjson::dom::element_type::UINT64:
        // Larger than any int64: only integer fields could want it, and they reject it.
        return Value(double(element.get_uint64().value_unsafe()));
      case simdjson::dom::element_type::DOUBLE:
        return Value(double(element.get_double().value_unsafe()));
      case simdjson::dom::element_type::STRING:
        return Value(std::string(element.get_string().value_unsafe()));
      case simdjson::dom::element_type::ARRAY: {
        if (depth >= limits_.maxDepth) return depthError();
        simdjson::dom::array array = element.get_array().value_unsafe();
        Value::Array items;
        items.reserve(array.size());
        for (simdjson::dom::element item : array) {
          auto v = convert(item, depth + 1);
          if (!v.ok()) return v.error();
          items.push_back(std::move(v).value());
        }
        return Value(std::move(items));
      }
      case simdjson::dom::element_type::OBJECT: {
        if (depth >= limits_.maxDepth) return depthError();
        simdjson::dom::object object = element.get_object().value_unsafe();
        Value::Object members;
        members.reserve(object.size());
        for (simdjson::dom::key_value_pair field : object) {
          auto v = convert(field.value, depth + 1);
          if (!v.ok()) return v.error();
          members.emplace_back(std::string(field.key), std::move(v).value());
        }
        if (auto dup = duplicateKey(members)) {
          return Error("duplicate key \"" + *dup + "\"");
        }
        return Value(std::move(members));
      }
    }
    return Error("unexpected JSON value");
  }

 private:
  Error depthError() const {
    return Error("nesting deeper than " + std::to_string(limits_.maxDepth) + " levels");
  }

  static std::optional<std::string> duplicateKey(const Value::Object& members) {
    std::vector<std::string_view> keys;
    keys.reserve(members.size());
    for (const auto& m : members) keys.push_back(m.first);
    std::sort(keys.begin(), keys.end());
    auto it = std::adjacent_find(keys.begin(), keys.end());
    if (it == keys.end()) return std::nullopt;
    return std::string(*it);
  }

  const ReaderLimits& limits_;
  size_t values_ = 0;
};

}  // namespace

Status readJsonDocuments(std::string_view text, const DocumentHandler& onDocument,
                         const ReaderLimits& limits) {
  // Nothing but whitespace is an empty stream, as in YAML (simdjson reports garbage for it).
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return okStatus();
  simdjson::padded_string padded(text);
  simdjson::dom::parser parser;
  simdjson::dom::document_stream stream;
  // One batch holds the whole input, so a single large document (a kind: List) parses too.
  size_t batch = std::max<size_t>(text.size(), simdjson::dom::MINIMAL_BATCH_SIZE);
  auto error = parser.parse_many(padded, batch).get(stream);
  if (error) return Error(std::string("invalid JSON: ") + simdjson::error_message(error));
  size_t index = 0;
  for (auto it = stream.begin(); it != stream.end(); ++it) {
    simdjson::dom::element element;
    error = (*it).get(element);
    if (error) {
      return Error("JSON document " + std::to_string(index + 1) + " at byte " +
                   std::to_string(it.current_index()) + ": " + simdjson::error_message(error));
    }
    Converter converter(limits);
    auto value = converter.convert(element);
    if (!value.ok()) {
      return value.error().withContext("JSON document " + std::to_string(index + 1));
    }
    if (!value->isNull()) {
      Status st = onDocument(std::move(value).value(), index);
      if (!st.ok()) return st;
    }
    ++index;
  }
  if (size_t truncated = stream.truncated_bytes(); truncated > 0) {
    return Error("invalid JSON: the last " + std::to_string(truncated) + " bytes (from byte " +
                 std::to_string(text.size() - std::min(truncated, text.size())) +
                 ") are not a complete document (cut short, or unbalanced brackets)");
  }
  return okStatus();
}

}  // namespace capstan::control
