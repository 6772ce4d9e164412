#include "dataplane/dpdk/eal.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <unistd.h>

#include <mutex>

namespace capstan::dataplane::dpdk {

Result<std::vector<std::string>> splitEalArgs(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  bool inWord = false;
  char quote = 0;  // ' or " while inside quotes
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quote == '\'') {
      if (c == '\'') {
        quote = 0;
      } else {
        word += c;
      }
    } else if (c == '\\') {
      if (i + 1 == text.size()) {
        return Error("--dpdk-eal-args: a backslash ends the string");
      }
      word += text[++i];
      inWord = true;
    } else if (quote == '"') {
      if (c == '"') {
        quote = 0;
      } else {
        word += c;
      }
    } else if (c == '\'' || c == '"') {
      quote = c;
      inWord = true;
    } else if (c == ' ' || c == '\t' || c == '\n') {
      if (inWord) words.push_back(std::move(word));
      word.clear();
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote != 0) {
    return Error(std::string("--dpdk-eal-args: unterminated ") + quote + " quote");
  }
  if (inWord) words.push_back(std::move(word));
  return words;
}

namespace {

struct EalState {
  std::mutex mutex;
  bool attempted = false;
  std::vector<std::string> args;
  std::string failure;  // empty when the EAL is up
  // rte_eal_init() keeps pointers into argv (getopt permutes it, some options are kept as
  // given): the storage lives as long as the process.
  std::vector<std::string> storage;
  std::vector<char*> argv;
};

EalState& state() {
  static EalState* s = new EalState();  // never destroyed: the EAL outlives static destructors
  return *s;
}

std::string joined(const std::vector<std::string>& args) {
  std::string out;
  for (const std::string& a : args) {
    if (!out.empty()) out += ' ';
    out += a;
  }
  return out;
}

}  // namespace

Status Eal::init(const std::vector<std::string>& args) {
  EalState& s = state();
  std::lock_guard lock(s.mutex);
  if (s.attempted) {
    if (!s.failure.empty()) return Error("DPDK EAL initialisation failed earlier: " + s.failure);
    if (args != s.args) {
      return Error("DPDK EAL is already initialised with \"" + joined(s.args) +
                   "\"; it cannot be initialised again with \"" + joined(args) + "\"");
    }
    return okStatus();
  }
  for (const std::string& a : args) {
    // The EAL prints its usage and calls exit() for these.
    if (a == "-h" || a == "--help") {
      return Error("--dpdk-eal-args: " + a + " is not allowed (the EAL would exit the process)");
    }
  }
  s.attempted = true;
  s.args = args;
  s.storage.reserve(args.size() + 1);
  s.storage.push_back("capstan");
  for (const std::string& a : args) s.storage.push_back(a);
  for (std::string& a : s.storage) s.argv.push_back(a.data());
  s.argv.push_back(nullptr);
  optind = 1;  // getopt's state, in case anything parsed with it before
  const int parsed = rte_eal_init(static_cast<int>(s.storage.size()), s.argv.data());
  if (parsed < 0) {
    s.failure = "rte_eal_init(\"" + joined(args) + "\"): " + rte_strerror(rte_errno);
    return Error(s.failure);
  }
  if (static_cast<size_t>(parsed) + 1 != s.storage.size()) {
    // Words the EAL did not recognise: they would silently be ignored otherwise.
    s.failure = "--dpdk-eal-args: the EAL did not consume every argument of \"" + joined(args) +
                "\" (" + std::to_string(s.storage.size() - 1 - static_cast<size_t>(parsed)) +
                " left over)";
    return Error(s.failure);
  }
  return okStatus();
}

Status Eal::init(std::string_view args) {
  Result<std::vector<std::string>> words = splitEalArgs(args);
  if (!words) return words.error();
  return init(*words);
}

bool Eal::initialized() {
  EalState& s = state();
  std::lock_guard lock(s.mutex);
  return s.attempted && s.failure.empty();
}

std::vector<unsigned> Eal::workerLcores() {
  std::vector<unsigned> out;
  if (!initialized()) return out;
  unsigned lcore = 0;
  RTE_LCORE_FOREACH_WORKER(lcore) { out.push_back(lcore); }
  return out;
}

unsigned Eal::mainLcore() { return rte_get_main_lcore(); }

std::string Eal::runtimeDir() { return initialized() ? rte_eal_get_runtime_dir() : ""; }

}  // namespace capstan::dataplane::dpdk
