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
#include <utility>
#include <vector>

#include "control/value.h"
#include "model/result.h"

namespace capstan::control {

struct ReaderLimits {
  size_t maxDepth = 200;  // nested lists/objects
  // Values in one document, aliases expanded. Values read from bytes are bounded by the input's
  // size anyway (a kind: List of 10,000 Services and their EndpointSlices holds 2.2 million);
  // this is the backstop.
  size_t maxValuesPerDocument = 32'000'000;
  // Values YAML aliases may create in one document, and values anchors may hold: what a few
  // bytes can be made to cost ("billion laughs"). Real manifests use a handful.
  size_t maxAliasValues = 1'000'000;
};

// Receives each non-empty document with its 0-based index in the stream. Returning an error
// stops the reader, which then returns that error.
using DocumentHandler = std::function<Status(Value document, size_t index)>;

// YAML 1.2 stream ("---"-separated documents). Plain scalars resolve by the YAML 1.2 core schema
// (true/false, null/~, integers, floats; anything else is a string); quoted and block scalars
// are strings. Errors name the line: "line 7, column 3: mapping values are not allowed here".
// `firstLine` is the line number of the first line of `text` (when it is a piece of a larger
// file), for the lines in Values and errors.
Status readYamlDocuments(std::string_view text, const DocumentHandler& onDocument,
                         const ReaderLimits& limits = {}, uint32_t firstLine = 1);

// One JSON document, or several separated by whitespace (a JSON stream).
Status readJsonDocuments(std::string_view text, const DocumentHandler& onDocument,
                         const ReaderLimits& limits = {});

enum class DocumentFormat { kYaml, kJson };

// JSON if the first non-blank byte is '{' or '[', YAML otherwise. (JSON is YAML too, but the
// JSON reader is several times faster and stricter.)
DocumentFormat sniffFormat(std::string_view text);

Status readDocuments(std::string_view text, const DocumentHandler& onDocument,
                     const ReaderLimits& limits = {}, uint32_t firstLine = 1);

// Cuts a YAML stream into pieces of about `targetBytes` at document-start lines ("---" at
// column 0), which YAML forbids inside content, so every piece reads as the same documents the
// whole would. Each piece comes with the line number it starts at. A stream with directives
// ("%YAML") stays whole. Lets a large file be parsed on several threads.
std::vector<std::pair<std::string_view, uint32_t>> splitYamlStream(std::string_view text,
                                                                   size_t targetBytes);

}  // namespace capstan::control
