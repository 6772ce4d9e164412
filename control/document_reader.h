// Readers that turn YAML or JSON text into Value documents, one at a time.
//
// YAML goes through libyaml's event parser and JSON through simdjson; both build the same Value
// tree. Documents are handed to the caller one by one, so a file of 20,000 documents never holds
// more than one tree at a time. Both readers bound what hostile input can cost: nesting depth,
// the number of values in a document (YAML aliases cannot multiply it), and they reject
// duplicate keys in an object, which Kubernetes' strict decoding rejects too.
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>

#include "control/value.h"
#include "model/result.h"

namespace capstan::control {

struct ReaderLimits {
  size_t maxDepth = 200;                    // nested lists/objects
  size_t maxValuesPerDocument = 2'000'000;  // after YAML alias expansion
};

// Receives each non-empty document with its 0-based index in the stream. Returning an error
// stops the reader, which then returns that error.
using DocumentHandler = std::function<Status(Value document, size_t index)>;

// YAML 1.2 stream ("---"-separated documents). Plain scalars resolve by the YAML 1.2 core schema
// (true/false, null/~, integers, floats; anything else is a string); quoted and block scalars
// are strings. Errors name the line: "line 7, column 3: mapping values are not allowed here".
Status readYamlDocuments(std::string_view text, const DocumentHandler& onDocument,
                         const ReaderLimits& limits = {});

// One JSON document, or several separated by whitespace (a JSON stream).
Status readJsonDocuments(std::string_view text, const DocumentHandler& onDocument,
                         const ReaderLimits& limits = {});

enum class DocumentFormat { kYaml, kJson };

// JSON if the first non-blank byte is '{' or '[', YAML otherwise. (JSON is YAML too, but the
// JSON reader is several times faster and stricter.)
DocumentFormat sniffFormat(std::string_view text);

Status readDocuments(std::string_view text, const DocumentHandler& onDocument,
                     const ReaderLimits& limits = {});

}  // namespace capstan::control
