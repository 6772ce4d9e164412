// ChunkedDecoder: the chunked transfer coding (RFC 9112 7.1), decoded incrementally and without
// copying: each call hands back a run of body bytes that points into the caller's input. The
// ingress re-encodes what it forwards (it never passes a peer's chunk framing through), so chunk
// extensions and trailers stop here.
//
// Refused: a chunk size that is not hex, longer than 16 digits or over the body limit; a chunk
// line or trailer section over its limit; chunk extensions outside the RFC 9112 7.1.1 grammar; a
// missing CRLF after chunk data; a line not ended by CRLF (RFC 9112 2.2's bare-LF tolerance is for
// the start line and fields of a head, not the chunked coding; the same body bytes must not frame
// differently in two parsers); bare CR; obs-fold or an invalid field line in the trailers.
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

  // Decodes from the start of `input`, where the previous call's step.consumed left off. At most
  // one run of body bytes is handed back per call, and the framing after it is read as far as
  // it goes. kIncomplete: step.consumed bytes were used (with step.data, possibly empty); when
  // step.consumed < input.size() the rest starts the next chunk's data — call again at once with
  // it — otherwise call again when more bytes arrive. kComplete: the body and its trailers ended
  // after step.consumed bytes (data may still hold the last bytes); what follows is the next
  // message. kError: stop and answer error.status (400; 413 over maxBodyBytes; 431 trailers
  // over kMaxTrailerBytes).
  ParseStatus decode(std::string_view input, Step& step, ParseError& error);

  bool done() const { return state_ == State::kDone; }
  // The sum of the chunk sizes read so far.
  uint64_t bodyBytes() const { return bodyBytes_; }
  void reset();

  // RFC 9112 7.1.1 has a server bound chunk extensions; they end at the chunk line's end, so
  // the bound is on the whole line (size and extensions).
  static constexpr uint32_t kMaxChunkLineBytes = 4096;
  // The trailer section, every field line and the final CRLF included.
  static constexpr uint32_t kMaxTrailerBytes = 16 * 1024;

 private:
  enum class State : uint8_t {
    kSize,           // chunk-size hex digits
    kExtBws,         // BWS before ';' or the line's CR
    kExtNameStart,   // after ';': BWS, then chunk-ext-name
    kExtName,        // in chunk-ext-name
    kExtAfterName,   // BWS after the name: '=', ';' or CR
    kExtValueStart,  // after '=': BWS, then a token or a quoted-string
    kExtToken,       // in a token value
    kExtQuoted,      // in a quoted-string value
    kExtQuotedPair,  // after '\' in a quoted-string
    kSizeLf,         // the LF of the chunk line
    kData,           // chunkLeft_ bytes of data
    kDataCr,         // the CRLF after the data
    kDataLf,
    kTrailerLineStart,  // a field line or the final CRLF
    kTrailerName,
    kTrailerValue,
    kTrailerLf,
    kEndLf,  // the LF of the final CRLF
    kDone
  };
  State state_ = State::kSize;
  uint64_t maxBodyBytes_;
  uint64_t bodyBytes_ = 0;
  uint64_t chunkLeft_ = 0;  // while in kSize: the size read so far
  uint32_t lineBytes_ = 0;
  uint32_t trailerBytes_ = 0;
  uint8_t sizeDigits_ = 0;
};

// Appends the chunk framing for `size` data bytes ("1a2b\r\n"); after the data, "\r\n". The last
// chunk is "0\r\n\r\n".
void appendChunkHeader(uint64_t size, std::string& out);
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace capstan::l7::http1
