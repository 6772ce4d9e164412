// ChunkedDecoder: the chunked transfer coding (RFC 9112 7.1), decoded incrementally and without
// copying: each call hands back a run of body bytes that points into the caller's input. The
// ingress re-encodes what it forwards (it never passes a peer's chunk framing through), so chunk
// extensions and trailers stop here.
//
// Refused: a chunk size that is not hex, longer than 16 digits or over the body limit; a chunk
// line or trailer section over its limit; a missing CRLF after chunk data; bare CR; obs-fold or
// an invalid field line in the trailers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "l7/http1/message.h"

namespace capstan::l7::http1 {

class ChunkedDecoder {
 public:
  // `maxBodyBytes`: the sum of chunk sizes above which the body is refused (413).
  explicit ChunkedDecoder(uint64_t maxBodyBytes = UINT64_MAX);

  struct Step {
    size_t consumed = 0;    // bytes of `input` used by this step
    std::string_view data;  // body bytes found (inside input), possibly empty
  };

  // Decodes from the start of `input`. kIncomplete: all of `input` that could be used was used
  // (step.consumed, possibly with data); call again with more. kComplete: the body and its
  // trailers ended after step.consumed bytes (data may still hold the last bytes). kError: stop
  // and answer error.status.
  ParseStatus decode(std::string_view input, Step& step, ParseError& error);

  bool done() const;
  uint64_t bodyBytes() const { return bodyBytes_; }
  void reset();

 private:
  enum class State : uint8_t {
    kSize,
    kExtension,
    kSizeLf,
    kData,
    kDataCr,
    kDataLf,
    kTrailer,
    kDone
  };
  State state_ = State::kSize;
  uint64_t maxBodyBytes_;
  uint64_t bodyBytes_ = 0;
  uint64_t chunkLeft_ = 0;
  // Implementation state (digits seen, line lengths) as the implementation needs it.
  uint32_t lineBytes_ = 0;
  uint32_t trailerBytes_ = 0;
};

// Appends the chunk framing for `size` data bytes ("1a2b\r\n"); after the data, "\r\n". The last
// chunk is "0\r\n\r\n".
void appendChunkHeader(uint64_t size, std::string& out);
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace capstan::l7::http1
