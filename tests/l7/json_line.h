// Reading back one JSON access log line in the l7 tests, with the daemon's own JSON reader.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "control/document_reader.h"

namespace capstan::l7::test {

// The one JSON document in `line` (a test failure when it is not exactly one).
inline control::Value parseJsonLine(const std::string& line) {
  control::Value doc;
  size_t documents = 0;
  Status st = control::readJsonDocuments(line, [&](control::Value v, size_t) {
    doc = std::move(v);
    ++documents;
    return okStatus();
  });
  EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message()) << "\n" << line;
  EXPECT_EQ(documents, 1u) << line;
  return doc;
}

// A field as text: strings as they are, integers in decimal, numbers as printf's %f,
// "(null)", "(missing)".
inline std::string jsonField(const control::Value& doc, std::string_view key) {
  const control::Value* v = doc.find(key);
  if (v == nullptr) return "(missing)";
  switch (v->type()) {
    case control::Value::Type::kNull:
      return "(null)";
    case control::Value::Type::kString:
      return v->asString();
    case control::Value::Type::kInt:
      return std::to_string(v->asInt());
    case control::Value::Type::kFloat:
      return std::to_string(v->asFloat());  // six decimals
    default:
      return "(other)";
  }
}

}  // namespace capstan::l7::test
