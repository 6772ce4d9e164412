// A Value as JSON text, for tests: the decoder tests decode their YAML fixtures from JSON too,
// and the API server stand-in writes the objects it serves. Header-only.
#pragma once

#include <cstdio>
#include <string>

#include "control/json_text.h"
#include "control/value.h"

namespace capstan::support {

inline void appendJson(const control::Value& v, std::string& out) {
  using control::Value;
  switch (v.type()) {
    case Value::Type::kNull:
      out += "null";
      return;
    case Value::Type::kBool:
      out += v.asBool() ? "true" : "false";
      return;
    case Value::Type::kInt:
      out += std::to_string(v.asInt());
      return;
    case Value::Type::kFloat: {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.17g", v.asFloat());
      out += buf;
      return;
    }
    case Value::Type::kString:
      control::appendJsonString(out, v.asString());
      return;
    case Value::Type::kArray: {
      out += '[';
      bool first = true;
      for (const Value& item : v.asArray()) {
        if (!first) out += ',';
        first = false;
        appendJson(item, out);
      }
      out += ']';
      return;
    }
    case Value::Type::kObject: {
      out += '{';
      bool first = true;
      for (const auto& [key, item] : v.asObject()) {
        if (!first) out += ',';
        first = false;
        control::appendJsonString(out, key);
        out += ':';
        appendJson(item, out);
      }
      out += '}';
      return;
    }
  }
}

}  // namespace capstan::support
