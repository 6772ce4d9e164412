#include "l7/access_log.h"

#include <emmintrin.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <ctime>

namespace capstan::l7 {

namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr size_t kMaxSpareBuffers = 16;

void appendUnsigned(uint64_t value, std::string& out) {
  char text[24];
  auto [end, ec] = std::to_chars(text, text + sizeof(text), value);
  out.append(text, end);
}

// Seconds with six decimals, from nanoseconds (never negative here).
void appendSeconds(std::chrono::nanoseconds d, std::string& out) {
  const uint64_t micros = static_cast<uint64_t>(std::max<int64_t>(0, d.count()) / 1000);
  appendUnsigned(micros / 1'000'000, out);
  char fraction[7];
  uint64_t rest = micros % 1'000'000;
  for (int i = 5; i >= 0; --i, rest /= 10) fraction[i + 1] = static_cast<char>('0' + rest % 10);
  fraction[0] = '.';
  out.append(fraction, sizeof(fraction));
}

// The length of the valid UTF-8 sequence (RFC 3629) starting at s[i], or 0.
size_t utf8Sequence(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // the range of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;  // no surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
  }
  return n;
}

// Bytes both formats copy as they are: printable ASCII but '"' and '\\'.
constexpr std::array<bool, 256> kPlain = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x7f; ++c) plain[c] = c != '"' && c != '\\';
  return plain;
}();

// The index of the first byte from `i` on that is not kPlain (or s.size()), 16 bytes at a time:
// user agents and targets are long runs of plain bytes.
size_t skipPlain(std::string_view s, size_t i) {
  const __m128i kSpace = _mm_set1_epi8(0x20);
  const __m128i kDel = _mm_set1_epi8(0x7f);
  const __m128i kQuote = _mm_set1_epi8('"');
  const __m128i kBackslash = _mm_set1_epi8('\\');
  for (; i + 16 <= s.size(); i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + i));
    // Signed compare: 0x80-0xff are negative, so one compare finds the controls and non-ASCII.
    const __m128i special =
        _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(v, kSpace), _mm_cmpeq_epi8(v, kDel)),
                     _mm_or_si128(_mm_cmpeq_epi8(v, kQuote), _mm_cmpeq_epi8(v, kBackslash)));
    if (const int mask = _mm_movemask_epi8(special); mask != 0) {
      return i + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
    }
  }
  while (i < s.size() && kPlain[static_cast<unsigned char>(s[i])]) ++i;
  return i;
}

// A JSON string (RFC 8259 7), quotes included.
void appendJsonString(std::string_view s, std::string& out) {
  out.push_back('"');
  size_t run = 0;  // start of the bytes not yet copied
  for (size_t i = skipPlain(s, 0); i < s.size(); i = skipPlain(s, i)) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      if (size_t n = utf8Sequence(s, i); n != 0) {
        i += n;
        continue;
      }
    }
    out.append(s.data() + run, i - run);
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default: {
        const char escape[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out.append(escape, sizeof(escape));
      }
    }
    run = ++i;
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

// Bytes inside a quoted field of the common format: nginx's default escaping.
void appendCommonEscaped(std::string_view s, std::string& out) {
  size_t run = 0;
  for (size_t i = skipPlain(s, 0); i < s.size(); i = skipPlain(s, i + 1)) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    out.append(s.data() + run, i - run);
    if (c == '"' || c == '\\') {
      const char escape[2] = {'\\', static_cast<char>(c)};
      out.append(escape, 2);
    } else {
      const char escape[4] = {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
      out.append(escape, 4);
    }
    run = i + 1;
  }
  out.append(s.data() + run, s.size() - run);
}

void appendCommonQuoted(std::string_view s, std::string& out) {
  out.push_back('"');
  if (s.empty()) {
    out.push_back('-');
  } else {
    appendCommonEscaped(s, out);
  }
  out.push_back('"');
}

void appendTwoDigits(unsigned v, char* p) {
  p[0] = static_cast<char>('0' + v / 10 % 10);
  p[1] = static_cast<char>('0' + v % 10);
}

}  // namespace

std::optional<AccessLogFormat> parseAccessLogFormat(std::string_view text) {
  if (text == "json") return AccessLogFormat::kJson;
  if (text == "common") return AccessLogFormat::kCommon;
  return std::nullopt;
}

std::string_view AccessLogFormatter::timeText(std::chrono::system_clock::time_point time) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
  const int64_t second = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  if (second != cachedSecond_) {
    cachedSecond_ = second;
    const time_t t = static_cast<time_t>(second);
    struct tm tm {};
    gmtime_r(&t, &tm);
    if (format_ == AccessLogFormat::kJson) {
      // 2025-01-02T03:04:05.678Z
      cachedLength_ =
          std::strftime(cachedTime_, sizeof(cachedTime_), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
      fractionAt_ = cachedLength_ - 4;
    } else {
      // 02/Jan/2025:03:04:05 +0000 (the month in English whatever the locale)
      static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
      char* p = cachedTime_;
      appendTwoDigits(static_cast<unsigned>(tm.tm_mday), p);
      p[2] = '/';
      std::memcpy(p + 3, kMonths[tm.tm_mon % 12], 3);
      p[6] = '/';
      auto [end, ec] = std::to_chars(p + 7, p + 12, tm.tm_year + 1900);
      p = end;
      *p++ = ':';
      appendTwoDigits(static_cast<unsigned>(tm.tm_hour), p);
      p[2] = ':';
      appendTwoDigits(static_cast<unsigned>(tm.tm_min), p + 3);
      p[5] = ':';
      appendTwoDigits(static_cast<unsigned>(tm.tm_sec), p + 6);
      std::memcpy(p + 8, " +0000", 6);
      cachedLength_ = static_cast<size_t>(p + 14 - cachedTime_);
    }
  }
  if (format_ == AccessLogFormat::kJson) {
    const unsigned millis = static_cast<unsigned>(ms - second * 1000);
    cachedTime_[fractionAt_] = static_cast<char>('0' + millis / 100);
    appendTwoDigits(millis % 100, cachedTime_ + fractionAt_ + 1);
  }
  return {cachedTime_, cachedLength_};
}

void AccessLogFormatter::append(const AccessLogEntry& e, std::string& out) {
  const std::string_view time = timeText(e.time);
  const char protocol[] = {'H', 'T', 'T', 'P',
                           '/', '1', '.', static_cast<char>('0' + e.minorVersion)};
  const std::string_view protocolText(protocol, sizeof(protocol));
  if (format_ == AccessLogFormat::kJson) {
    out.append("{\"time\":\"");
    out.append(time);
    out.append("\",\"client\":");
    appendJsonString(e.client, out);
    out.append(",\"method\":");
    appendJsonString(e.method, out);
    out.append(",\"target\":");
    appendJsonString(e.target, out);
    out.append(",\"protocol\":");
    appendJsonString(protocolText, out);
    out.append(",\"status\":");
    appendUnsigned(e.status, out);
    out.append(",\"bytes_sent\":");
    appendUnsigned(e.bytesSent, out);
    out.append(",\"request_time\":");
    appendSeconds(e.duration, out);
    out.append(",\"upstream\":");
    if (e.upstream.empty()) {
      out.append("null");
    } else {
      appendJsonString(e.upstream, out);
    }
    out.append(",\"upstream_time\":");
    if (e.upstreamTime.count() < 0) {
      out.append("null");
    } else {
      appendSeconds(e.upstreamTime, out);
    }
    out.append(",\"host\":");
    appendJsonString(e.host, out);
    out.append(",\"route\":");
    if (e.route.empty()) {
      out.append("null");
    } else {
      appendJsonString(e.route, out);
    }
    out.append(",\"request_id\":");
    appendJsonString(e.requestId, out);
    out.append(",\"user_agent\":");
    appendJsonString(e.userAgent, out);
    out.append(",\"referer\":");
    appendJsonString(e.referer, out);
    out.append("}\n");
    return;
  }
  appendCommonEscaped(e.client.empty() ? std::string_view("-") : e.client, out);
  out.append(" - - [");
  out.append(time);
  out.append("] \"");
  if (e.method.empty()) {
    out.push_back('-');  // the request line could not be parsed
  } else {
    appendCommonEscaped(e.method, out);
    out.push_back(' ');
    appendCommonEscaped(e.target, out);
    out.push_back(' ');
    out.append(protocolText);
  }
  out.append("\" ");
  appendUnsigned(e.status, out);
  out.push_back(' ');
  appendUnsigned(e.bytesSent, out);
  out.push_back(' ');
  appendCommonQuoted(e.referer, out);
  out.push_back(' ');
  appendCommonQuoted(e.userAgent, out);
  out.append(" host=");
  appendCommonQuoted(e.host, out);
  out.append(" route=");
  appendCommonQuoted(e.route, out);
  out.append(" upstream=");
  appendCommonQuoted(e.upstream, out);
  out.append(" request_time=");
  appendSeconds(e.duration, out);
  out.append(" upstream_time=");
  if (e.upstreamTime.count() < 0) {
    out.push_back('-');
  } else {
    appendSeconds(e.upstreamTime, out);
  }
  out.append(" request_id=");
  appendCommonQuoted(e.requestId, out);
  out.push_back('\n');
}

Result<std::shared_ptr<AccessLogWriter>> AccessLogWriter::open(const std::string& path,
                                                               Options options) {
  // Non-blocking, so that a writer stuck on a pipe nobody reads can still be stopped. stdout is
  // reopened (a description of its own: O_NONBLOCK must not leak into the shared one) where
  // /proc allows it (files, pipes), and used as it is otherwise (a socket).
  int fd = -1;
  if (path == "-") {
    fd = ::open("/proc/self/fd/1", O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) fd = ::fcntl(1, F_DUPFD_CLOEXEC, 3);
  } else {
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NONBLOCK | O_CLOEXEC, 0644);
  }
  if (fd < 0) {
    return Error("access log " + (path == "-" ? std::string("(stdout)") : path) + ": " +
                 std::strerror(errno));
  }
  const int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    const int saved = errno;
    ::close(fd);
    return Error("access log " + path + ": eventfd: " + std::strerror(saved));
  }
  return std::shared_ptr<AccessLogWriter>(new AccessLogWriter(path, fd, wake, options));
}

AccessLogWriter::AccessLogWriter(std::string path, int fd, int wakeFd, Options options)
    : path_(std::move(path)), fd_(fd), wakeFd_(wakeFd), options_(options) {
  thread_ = std::thread([this] { run(); });
}

AccessLogWriter::~AccessLogWriter() {
  {
    std::lock_guard lock(mutex_);
    closeDeadline_ = std::chrono::steady_clock::now() + options_.closeTimeout;
    closing_ = true;
  }
  ready_.notify_one();
  const uint64_t one = 1;
  (void)!::write(wakeFd_, &one, sizeof(one));
  thread_.join();
  ::close(fd_);
  ::close(wakeFd_);
}

void AccessLogWriter::submit(std::string& batch, uint32_t lines) {
  if (batch.empty()) return;
  {
    std::lock_guard lock(mutex_);
    if (!closing_ && queuedBytes_ + batch.size() <= options_.maxQueuedBytes) {
      queuedBytes_ += batch.size();
      queue_.push_back({std::move(batch), lines});
      if (!spare_.empty()) {
        batch = std::move(spare_.back());
        spare_.pop_back();
      } else {
        batch = std::string();
      }
      ready_.notify_one();
      return;
    }
  }
  droppedLines_.fetch_add(lines, std::memory_order_relaxed);
  batch.clear();
}

AccessLogCounters AccessLogWriter::counters() const {
  return {lines_.load(std::memory_order_relaxed), droppedLines_.load(std::memory_order_relaxed),
          bytes_.load(std::memory_order_relaxed), writeErrors_.load(std::memory_order_relaxed)};
}

bool AccessLogWriter::writeBatch(const std::string& batch) {
  size_t done = 0;
  while (done < batch.size()) {
    const ssize_t n = ::write(fd_, batch.data() + done, batch.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) {
      writeErrors_.fetch_add(1, std::memory_order_relaxed);
      // A batch cut mid-line would leave half a line: end it so that the next one starts clean.
      if (done > 0 && batch[done - 1] != '\n') (void)!::write(fd_, "\n", 1);
      return false;
    }
    // Full (a pipe, a non-blocking stdout): wait for room, or for the close to be asked.
    int timeout = -1;
    if (closing_) {
      const auto left = closeDeadline_ - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) {
        if (done > 0) (void)!::write(fd_, "\n", 1);
        return false;
      }
      timeout =
          static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(left).count() + 1);
    }
    pollfd fds[2] = {{fd_, POLLOUT, 0}, {wakeFd_, POLLIN, 0}};
    if (::poll(fds, 2, timeout) > 0 && (fds[1].revents & POLLIN)) {
      uint64_t value = 0;
      (void)!::read(wakeFd_, &value, sizeof(value));
    }
  }
  return true;
}

void AccessLogWriter::run() {
  // A reader that went away must give EPIPE here, not kill the daemon with SIGPIPE.
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
  for (;;) {
    Batch batch;
    {
      std::unique_lock lock(mutex_);
      ready_.wait(lock, [&] { return closing_ || !queue_.empty(); });
      if (queue_.empty()) return;
      batch = std::move(queue_.front());
      queue_.pop_front();
    }
    const bool written = writeBatch(batch.text);
    if (written) {
      lines_.fetch_add(batch.lines, std::memory_order_relaxed);
      bytes_.fetch_add(batch.text.size(), std::memory_order_relaxed);
    } else {
      droppedLines_.fetch_add(batch.lines, std::memory_order_relaxed);
    }
    std::lock_guard lock(mutex_);
    queuedBytes_ -= batch.text.size();
    if (spare_.size() < kMaxSpareBuffers && batch.text.capacity() <= 4 * kAccessLogBatchBytes) {
      batch.text.clear();
      spare_.push_back(std::move(batch.text));
    }
  }
}

void AccessLogBuffer::log(const AccessLogEntry& entry) {
  formatter_.append(entry, buffer_);
  ++lines_;
  if (buffer_.size() >= kAccessLogBatchBytes) flush();
}

void AccessLogBuffer::flush() {
  if (lines_ == 0 || !writer_) return;
  writer_->submit(buffer_, lines_);
  lines_ = 0;
}

}  // namespace capstan::l7
