// The YAML half of document_reader.h: libyaml events folded into Value trees.

#include <yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "control/document_reader.h"

namespace capstan::control {

namespace {

std::string_view scalarText(const yaml_event_t& event) {
  return {reinterpret_cast<const char*>(event.data.scalar.value), event.data.scalar.length};
}

bool allDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// YAML 1.2 core schema resolution of a plain scalar.
Value resolvePlain(std::string_view s, uint32_t line) {
  if (s.empty()) return Value::null(line);
  char c = s[0];
  bool maybeSpecial = (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == '~' ||
                      c == 'n' || c == 'N' || c == 't' || c == 'T' || c == 'f' || c == 'F';
  if (!maybeSpecial) return Value(std::string(s), line);
  if (s == "~" || s == "null" || s == "Null" || s == "NULL") return Value::null(line);
  if (s == "true" || s == "True" || s == "TRUE") return Value(true, line);
  if (s == "false" || s == "False" || s == "FALSE") return Value(false, line);

  std::string_view digits = s;
  if (digits[0] == '-' || digits[0] == '+') digits.remove_prefix(1);
  if (allDigits(digits)) {
    int64_t v = 0;
    const char* begin = s.data() + (s[0] == '+' ? 1 : 0);
    auto [ptr, ec] = std::from_chars(begin, s.data() + s.size(), v);
    if (ec == std::errc() && ptr == s.data() + s.size()) return Value(v, line);
    // Out of int64 range: a number, which integer fields then reject.
    return Value(std::strtod(std::string(s).c_str(), nullptr), line);
  }
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
    int base = s[1] == 'x' ? 16 : 8;
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(s.data() + 2, s.data() + s.size(), v, base);
    if (ec == std::errc() && ptr == s.data() + s.size()) return Value(v, line);
    return Value(std::string(s), line);
  }
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "+.inf" || s == "+.Inf" || s == "+.INF") {
    return Value(HUGE_VAL, line);
  }
  if (s == "-.inf" || s == "-.Inf" || s == "-.INF") return Value(-HUGE_VAL, line);
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return Value(std::nan(""), line);
  // [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
  size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  size_t intDigits = 0, fracDigits = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++intDigits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++fracDigits;
  }
  if (intDigits + fracDigits == 0) return Value(std::string(s), line);
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t expDigits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++expDigits;
    if (expDigits == 0) return Value(std::string(s), line);
  }
  if (i != s.size()) return Value(std::string(s), line);
  return Value(std::strtod(std::string(s).c_str(), nullptr), line);
}

// True if an object has two members with the same key; the first duplicate goes to `dup`.
bool findDuplicateKey(const Value::Object& members, std::string* dup) {
  if (members.size() <= 16) {
    for (size_t i = 1; i < members.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        if (members[i].first == members[j].first) {
          *dup = members[i].first;
          return true;
        }
      }
    }
    return false;
  }
  std::vector<std::string_view> keys;
  keys.reserve(members.size());
  for (const auto& m : members) keys.push_back(m.first);
  std::sort(keys.begin(), keys.end());
  auto it = std::adjacent_find(keys.begin(), keys.end());
  if (it == keys.end()) return false;
  *dup = std::string(*it);
  return true;
}

struct Frame {
  Value container;
  std::string anchor;
  std::string key;  // pending key, for objects
  bool haveKey = false;
  size_t valuesAtStart = 0;
};

struct Anchored {
  Value value;
  size_t values;
};

class DocumentBuilder {
 public:
  explicit DocumentBuilder(const ReaderLimits& limits) : limits_(limits) {}

  void reset() {
    stack_.clear();
    anchors_.clear();
    values_ = 0;
    done_ = false;
    root_ = Value();
  }

  Status scalar(const yaml_event_t& event) {
    uint32_t line = static_cast<uint32_t>(event.start_mark.line + 1);
    std::string_view text = scalarText(event);
    // A mapping key is kept as text, whatever it would resolve to.
    if (!stack_.empty() && stack_.back().container.isObject() && !stack_.back().haveKey) {
      stack_.back().key.assign(text);
      stack_.back().haveKey = true;
      return okStatus();
    }
    bool plain = event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    const char* tag = reinterpret_cast<const char*>(event.data.scalar.tag);
    if (tag && std::strcmp(tag, YAML_STR_TAG) == 0) plain = false;
    Value v = plain ? resolvePlain(text, line) : Value(std::string(text), line);
    std::string anchor = event.data.scalar.anchor
                             ? reinterpret_cast<const char*>(event.data.scalar.anchor)
                             : std::string();
    if (!anchor.empty()) anchors_[anchor] = Anchored{v, 1};
    return add(std::move(v), 1, line);
  }

  Status alias(const yaml_event_t& event) {
    uint32_t line = static_cast<uint32_t>(event.start_mark.line + 1);
    const char* name = reinterpret_cast<const char*>(event.data.alias.anchor);
    auto it = anchors_.find(name ? name : "");
    if (it == anchors_.end()) {
      return Error("line " + std::to_string(line) + ": unknown alias *" + (name ? name : ""));
    }
    if (!stack_.empty() && stack_.back().container.isObject() && !stack_.back().haveKey) {
      if (!it->second.value.isString()) {
        return Error("line " + std::to_string(line) + ": an alias used as a key must be a string");
      }
      stack_.back().key = it->second.value.asString();
      stack_.back().haveKey = true;
      return okStatus();
    }
    return add(Value(it->second.value), it->second.values, line);
  }

  Status start(const yaml_event_t& event, bool isObject) {
    uint32_t line = static_cast<uint32_t>(event.start_mark.line + 1);
    if (!stack_.empty() && stack_.back().container.isObject() && !stack_.back().haveKey) {
      return Error("line " + std::to_string(line) +
                   ": a list or object used as a key is not supported");
    }
    if (stack_.size() >= limits_.maxDepth) {
      return Error("line " + std::to_string(line) + ": nesting deeper than " +
                   std::to_string(limits_.maxDepth) + " levels");
    }
    Frame frame;
    frame.container = isObject ? Value(Value::Object{}, line) : Value(Value::Array{}, line);
    const yaml_char_t* anchor =
        isObject ? event.data.mapping_start.anchor : event.data.sequence_start.anchor;
    if (anchor) frame.anchor = reinterpret_cast<const char*>(anchor);
    frame.valuesAtStart = values_;
    stack_.push_back(std::move(frame));
    return okStatus();
  }

  Status end() {
    Frame frame = std::move(stack_.back());
    stack_.pop_back();
    uint32_t line = frame.container.line();
    if (frame.container.isObject()) {
      std::string dup;
      if (findDuplicateKey(frame.container.asObject(), &dup)) {
        return Error("line " + std::to_string(line) + ": duplicate key \"" + dup + "\"");
      }
    }
    size_t count = values_ - frame.valuesAtStart + 1;
    if (!frame.anchor.empty()) anchors_[frame.anchor] = Anchored{frame.container, count};
    values_ = frame.valuesAtStart;  // add() counts the whole subtree again
    return add(std::move(frame.container), count, line);
  }

  bool done() const { return done_; }
  Value takeRoot() { return std::move(root_); }

 private:
  Status add(Value v, size_t count, uint32_t line) {
    values_ += count;
    if (values_ > limits_.maxValuesPerDocument) {
      return Error("line " + std::to_string(line) + ": document has more than " +
                   std::to_string(limits_.maxValuesPerDocument) + " values");
    }
    if (stack_.empty()) {
      root_ = std::move(v);
      done_ = true;
      return okStatus();
    }
    Frame& top = stack_.back();
    if (top.container.isObject()) {
      top.container.mutableObject().emplace_back(std::move(top.key), std::move(v));
      top.key.clear();
      top.haveKey = false;
    } else {
      top.container.mutableArray().push_back(std::move(v));
    }
    return okStatus();
  }

  const ReaderLimits& limits_;
  std::vector<Frame> stack_;
  std::map<std::string, Anchored> anchors_;
  size_t values_ = 0;
  bool done_ = false;
  Value root_;
};

struct ParserDeleter {
  void operator()(yaml_parser_t* p) const {
    yaml_parser_delete(p);
    delete p;
  }
};

struct EventGuard {
  yaml_event_t event;
  ~EventGuard() { yaml_event_delete(&event); }
};

}  // namespace

Status readYamlDocuments(std::string_view text, const DocumentHandler& onDocument,
                         const ReaderLimits& limits) {
  std::unique_ptr<yaml_parser_t, ParserDeleter> parser(new yaml_parser_t);
  if (!yaml_parser_initialize(parser.get())) {
    delete parser.release();
    return Error("cannot initialise the YAML parser");
  }
  yaml_parser_set_input_string(parser.get(), reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());
  DocumentBuilder builder(limits);
  size_t index = 0;
  for (;;) {
    EventGuard g;
    if (!yaml_parser_parse(parser.get(), &g.event)) {
      std::memset(&g.event, 0, sizeof(g.event));  // nothing to delete
      const yaml_parser_t& p = *parser;
      std::string msg = "line " + std::to_string(p.problem_mark.line + 1) + ", column " +
                        std::to_string(p.problem_mark.column + 1) + ": ";
      msg += p.problem ? p.problem : "invalid YAML";
      if (p.context) msg += std::string(" ") + p.context;
      return Error(msg);
    }
    Status st;
    switch (g.event.type) {
      case YAML_STREAM_END_EVENT:
        return okStatus();
      case YAML_DOCUMENT_START_EVENT:
        builder.reset();
        break;
      case YAML_DOCUMENT_END_EVENT:
        if (builder.done()) {
          Value doc = builder.takeRoot();
          // An empty document ("---" with nothing after it) is skipped, as kubectl does.
          if (!doc.isNull()) st = onDocument(std::move(doc), index);
        }
        ++index;
        break;
      case YAML_SCALAR_EVENT:
        st = builder.scalar(g.event);
        break;
      case YAML_ALIAS_EVENT:
        st = builder.alias(g.event);
        break;
      case YAML_SEQUENCE_START_EVENT:
        st = builder.start(g.event, false);
        break;
      case YAML_MAPPING_START_EVENT:
        st = builder.start(g.event, true);
        break;
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT:
        st = builder.end();
        break;
      default:
        break;
    }
    if (!st.ok()) return st;
  }
}

DocumentFormat sniffFormat(std::string_view text) {
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    return (c == '{' || c == '[') ? DocumentFormat::kJson : DocumentFormat::kYaml;
  }
  return DocumentFormat::kYaml;
}

Status readDocuments(std::string_view text, const DocumentHandler& onDocument,
                     const ReaderLimits& limits) {
  return sniffFormat(text) == DocumentFormat::kJson ? readJsonDocuments(text, onDocument, limits)
                                                    : readYamlDocuments(text, onDocument, limits);
}

}  // namespace capstan::control
