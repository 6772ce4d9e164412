#include "control/value.h"

namespace capstan::control {

const Value* Value::find(std::string_view key) const {
  if (!isObject()) return nullptr;
  for (const Member& m : asObject()) {
    if (m.first == key) return &m.second;
  }
  return nullptr;
}

std::string_view Value::typeName(Type type) {
  switch (type) {
    case Type::kNull:
      return "null";
    case Type::kBool:
      return "a boolean";
    case Type::kInt:
      return "an integer";
    case Type::kFloat:
      return "a number";
    case Type::kString:
      return "a string";
    case Type::kArray:
      return "a list";
    case Type::kObject:
      return "an object";
  }
  return "?";
}

}  // namespace capstan::control
