// The ingress's access log: one line per request, JSON or the combined log format, written to a
// file or stdout without ever making a worker wait on the disk.
//
// How lines travel: each worker formats its lines into its own AccessLogBuffer (no lock, no
// allocation once the buffer has grown) and hands the whole buffer to the AccessLogWriter when it
// holds kAccessLogBatchBytes or when the worker's ~100 ms flush timer fires. The writer's one
// thread writes the batches in the order they came, each whole, so lines never interleave. The
// queue between them is bounded in bytes: when the writer falls behind (a slow disk, a pipe
// nobody reads), whole batches are dropped and their lines counted, and workers carry on.
//
// Who calls it: the control thread opens the writer (--ingress-access-log) and gives it to the
// IngressServer; workers log through their buffers; /metrics reads counters().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "model/result.h"

namespace capstan::l7 {

enum class AccessLogFormat : uint8_t {
  kJson,    // one JSON object per line
  kCommon,  // the combined log format (Apache/nginx) followed by key="value" fields
};

// "json" or "common"; nullopt otherwise.
std::optional<AccessLogFormat> parseAccessLogFormat(std::string_view text);

// One request, as the access log writes it. Every view must stay valid for the append() call.
struct AccessLogEntry {
  std::chrono::system_clock::time_point time;  // when the response ended
  std::string_view client;                     // the client's IP address
  std::string_view method;                     // empty: the head was refused by the parser
  std::string_view target;                     // the request target as sent
  uint8_t minorVersion = 1;                    // HTTP/1.<minorVersion>
  uint16_t status = 0;                         // 0: no response was sent
  uint64_t bytesSent = 0;                      // to the client: head and body
  std::chrono::nanoseconds duration{0};        // from the whole head to the response's end
  std::string_view upstream;                   // "ip:port"; empty: none was chosen
  std::chrono::nanoseconds upstreamTime{-1};   // from the upstream's choice; negative: none
  std::string_view host;                       // the Host header as sent
  std::string_view route;                      // "namespace/name" of the Ingress; empty: none
  std::string_view requestId;                  // X-Request-Id, the client's or the ingress's
  std::string_view userAgent;
  std::string_view referer;
};

// Formats entries, one line each. Keeps the formatted time of the last second, so that most lines
// cost no calendar conversion.
//
// JSON:   {"time":"2025-01-02T03:04:05.678Z","client":"10.0.0.1","method":"GET","target":"/a",
//          "protocol":"HTTP/1.1","status":200,"bytes_sent":154,"request_time":0.001234,
//          "upstream":"10.1.0.5:8080","upstream_time":0.001100,"host":"example.com",
//          "route":"default/site","request_id":"...","user_agent":"curl/8.0","referer":""}
//          (upstream, upstream_time and route are null when there is none). Strings are escaped
//          per RFC 8259; bytes that are not valid UTF-8 are written as \u00XX.
// common: 10.0.0.1 - - [02/Jan/2025:03:04:05 +0000] "GET /a HTTP/1.1" 200 154 "-" "curl/8.0"
//          host="example.com" route="default/site" upstream="10.1.0.5:8080"
//          request_time=0.001234 upstream_time=0.001100 request_id="..."
//          (on one line; "-" for what is absent). Inside quotes, '"' and '\' are escaped with a
//          backslash and bytes outside 0x20-0x7e as \xHH, as nginx's default escaping does.
class AccessLogFormatter {
 public:
  explicit AccessLogFormatter(AccessLogFormat format) : format_(format) {}

  // Appends one line, '\n' included, to `out`.
  void append(const AccessLogEntry& entry, std::string& out);

 private:
  std::string_view timeText(std::chrono::system_clock::time_point time);

  AccessLogFormat format_;
  int64_t cachedSecond_ = INT64_MIN;
  char cachedTime_[40] = {};
  size_t cachedLength_ = 0;
  size_t fractionAt_ = 0;  // JSON: where the milliseconds go in cachedTime_
};

struct AccessLogCounters {
  uint64_t lines = 0;         // written
  uint64_t droppedLines = 0;  // dropped: the writer fell behind, or the write failed
  uint64_t bytes = 0;         // written
  uint64_t writeErrors = 0;
};

// A worker hands its buffer over once it holds this much.
inline constexpr size_t kAccessLogBatchBytes = 32 * 1024;

struct AccessLogWriterOptions {
  // Bytes handed over and not written yet (the batch being written included) beyond which
  // batches are dropped.
  size_t maxQueuedBytes = size_t{4} << 20;
  // On destruction, how long the writer may go on writing what is queued.
  std::chrono::milliseconds closeTimeout{1000};
};

class AccessLogWriter {
 public:
  using Options = AccessLogWriterOptions;

  // `path`: a file, opened for appending (created 0644), or "-" for stdout. Errors name the path.
  static Result<std::shared_ptr<AccessLogWriter>> open(const std::string& path,
                                                       Options options = {});
  ~AccessLogWriter();  // writes what is queued (for up to closeTimeout), then closes

  AccessLogWriter(const AccessLogWriter&) = delete;
  AccessLogWriter& operator=(const AccessLogWriter&) = delete;

  // Takes `batch` (`lines` whole lines) to be written, or drops it when the queue is full, and
  // leaves in `batch` an empty buffer to format the next batch into (a recycled one when there
  // is one). Thread-safe; never waits on I/O.
  void submit(std::string& batch, uint32_t lines);

  AccessLogCounters counters() const;
  const std::string& path() const { return path_; }

 private:
  AccessLogWriter(std::string path, int fd, int wakeFd, Options options);
  void run();
  // Writes one batch whole; false when it could not (error, or closing and out of time).
  bool writeBatch(const std::string& batch);

  struct Batch {
    std::string text;
    uint32_t lines = 0;
  };

  const std::string path_;
  const int fd_;
  const int wakeFd_;  // eventfd: wakes a writer waiting for the fd to take more
  const Options options_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Batch> queue_;
  std::vector<std::string> spare_;  // written buffers, cleared, for submit() to hand back
  size_t queuedBytes_ = 0;
  std::atomic<bool> closing_{false};
  std::chrono::steady_clock::time_point closeDeadline_{};
  std::atomic<uint64_t> lines_{0};
  std::atomic<uint64_t> droppedLines_{0};
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> writeErrors_{0};
  std::thread thread_;
};

// One worker's side of the log: lines are formatted into its own buffer, handed to the writer
// when the buffer is full or flush() is called. Used by one thread only.
class AccessLogBuffer {
 public:
  AccessLogBuffer(std::shared_ptr<AccessLogWriter> writer, AccessLogFormat format)
      : writer_(std::move(writer)), formatter_(format) {}
  ~AccessLogBuffer() { flush(); }

  bool enabled() const { return writer_ != nullptr; }
  void log(const AccessLogEntry& entry);
  void flush();

 private:
  std::shared_ptr<AccessLogWriter> writer_;
  AccessLogFormatter formatter_;
  std::string buffer_;
  uint32_t lines_ = 0;
};

}  // namespace capstan::l7
