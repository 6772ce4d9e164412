// Value: a parsed JSON/YAML document as a small tree, the one input of the object decoder.
//
// The YAML reader (libyaml) and the JSON reader (simdjson) both produce it, so there is one
// decoder for manifests and for the API. Values remember their source line (YAML only) so errors
// can point at it. A tree lives only while one document is decoded.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace capstan::control {

class Value {
 public:
  enum class Type : uint8_t { kNull, kBool, kInt, kFloat, kString, kArray, kObject };
  using Array = std::vector<Value>;
  using Member = std::pair<std::string, Value>;
  using Object = std::vector<Member>;  // in document order

  Value() = default;
  explicit Value(bool b, uint32_t line = 0) : v_(b), line_(line) {}
  explicit Value(int64_t i, uint32_t line = 0) : v_(i), line_(line) {}
  explicit Value(double d, uint32_t line = 0) : v_(d), line_(line) {}
  explicit Value(std::string s, uint32_t line = 0) : v_(std::move(s)), line_(line) {}
  explicit Value(Array a, uint32_t line = 0) : v_(std::move(a)), line_(line) {}
  explicit Value(Object o, uint32_t line = 0) : v_(std::move(o)), line_(line) {}
  static Value null(uint32_t line = 0) {
    Value v;
    v.line_ = line;
    return v;
  }

  Type type() const { return static_cast<Type>(v_.index()); }
  // 1-based line of the value in its source; 0 when unknown (JSON).
  uint32_t line() const { return line_; }

  bool isNull() const { return type() == Type::kNull; }
  bool isString() const { return type() == Type::kString; }
  bool isObject() const { return type() == Type::kObject; }
  bool isArray() const { return type() == Type::kArray; }

  bool asBool() const { return std::get<bool>(v_); }
  int64_t asInt() const { return std::get<int64_t>(v_); }
  double asFloat() const { return std::get<double>(v_); }
  const std::string& asString() const { return std::get<std::string>(v_); }
  const Array& asArray() const { return std::get<Array>(v_); }
  const Object& asObject() const { return std::get<Object>(v_); }
  Array& mutableArray() { return std::get<Array>(v_); }
  Object& mutableObject() { return std::get<Object>(v_); }

  // The member named `key` of an object; nullptr if absent or if this is not an object.
  const Value* find(std::string_view key) const;

  // "a string", "an integer", ...: for error messages ("expected an integer, got a string").
  std::string_view typeName() const { return typeName(type()); }
  static std::string_view typeName(Type type);

 private:
  std::variant<std::monostate, bool, int64_t, double, std::string, Array, Object> v_;
  uint32_t line_ = 0;
};

}  // namespace capstan::control
