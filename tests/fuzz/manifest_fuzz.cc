// Fuzz target: arbitrary bytes as a manifest file, through the YAML/JSON readers and the object
// decoder — the path every byte of a user's manifest directory takes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "control/decoder.h"
#include "control/document_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const capstan::control::ObjectDecoder decoder;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  capstan::control::ReaderLimits limits;
  limits.maxValuesPerDocument = 100'000;  // keep each input cheap; the limit itself is exercised
  (void)capstan::control::readDocuments(
      text,
      [](capstan::control::Value document, size_t) -> capstan::Status {
        for (const auto& d : decoder.decodeDocument(document)) {
          using Outcome = capstan::control::Decoded::Outcome;
          // Invariants: a decoded object has an identity; a rejection says why.
          if (d.outcome == Outcome::kOk && !d.key) std::abort();
          if (d.outcome != Outcome::kOk && d.message.empty()) std::abort();
        }
        return capstan::okStatus();
      },
      limits);
  return 0;
}
