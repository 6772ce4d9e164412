// The YAML half of document_reader.h: libyaml events folded into Value trees.

#include <yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
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
    // Core schema: 0x[0-9a-fA-F]+ and 0o[0-7]+. from_chars would also take a sign ("0x-1").
    bool valid = std::all_of(s.begin() + 2, s.end(), [base](char ch) {
      return base == 16 ? std::isxdigit(static_cast<unsigned char>(ch)) != 0
                        : ch >= '0' && ch <= '7';
    });
    if (!valid) return Value(std::string(s), line);
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
  DocumentBuilder(const ReaderLimits& limits, uint32_t lineBase)
      : limits_(limits), lineBase_(lineBase) {}

  void reset() {
    stack_.clear();
    anchors_.clear();
    values_ = 0;
    anchoredValues_ = 0;
    aliasValues_ = 0;
    done_ = false;
    root_ = Value();
  }

  Status scalar(const yaml_event_t& event) {
    uint32_t line = lineOf(event);
    std::string_view text = scalarText(event);
    // A mapping key is kept as text, whatever it would resolve to.
    const char* anchorName = reinterpret_cast<const char*>(event.data.scalar.anchor);
    if (!stack_.empty() && stack_.back().container.isObject() && !stack_.back().haveKey) {
      stack_.back().key.assign(text);
      stack_.back().haveKey = true;
      // An anchored key ("&k name: web") can be aliased later, as a key or as a value.
      if (anchorName) anchors_[anchorName] = Anchored{Value(std::string(text), line), 1};
      return okStatus();
    }
    bool plain = event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    const char* tag = reinterpret_cast<const char*>(event.data.scalar.tag);
    if (tag && std::strcmp(tag, YAML_STR_TAG) == 0) plain = false;
    Value v = plain ? resolvePlain(text, line) : Value(std::string(text), line);
    if (anchorName) anchors_[anchorName] = Anchored{v, 1};
    return add(std::move(v), 1, line);
  }

  Status alias(const yaml_event_t& event) {
    uint32_t line = lineOf(event);
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
    // Check before copying: the copy is what an alias bomb would make expensive.
    if (it->second.values >
        limits_.maxAliasValues - std::min(aliasValues_, limits_.maxAliasValues)) {
      return Error("line " + std::to_string(line) + ": aliases expand to more than " +
                   std::to_string(limits_.maxAliasValues) + " values");
    }
    aliasValues_ += it->second.values;
    if (Status st = checkBudget(it->second.values, line); !st.ok()) return st;
    return add(Value(it->second.value), it->second.values, line);
  }

  Status start(const yaml_event_t& event, bool isObject) {
    uint32_t line = lineOf(event);
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
      if (Status st = applyMergeKey(frame.container.mutableObject(), line); !st.ok()) return st;
    }
    size_t count = values_ - frame.valuesAtStart + 1;
    if (!frame.anchor.empty()) {
      // Each anchored collection is copied once for later aliases. Nested anchors would copy the
      // same values again at every level (a few MB of "- &a1\n  - &a2 ..." around a long list
      // cost gigabytes), so the copies share one budget, the document's value limit.
      anchoredValues_ += count;
      if (anchoredValues_ > limits_.maxAliasValues) {
        return Error("line " + std::to_string(line) + ": anchors hold more than " +
                     std::to_string(limits_.maxAliasValues) + " values");
      }
      anchors_[frame.anchor] = Anchored{frame.container, count};
    }
    values_ = frame.valuesAtStart;  // add() counts the whole subtree again
    return add(std::move(frame.container), count, line);
  }

  // The merge key (yaml.org/type/merge, which kubectl's YAML library honours): "<<: *base" or
  // "<<: [*a, *b]" adds the members of the named mappings that the mapping does not set itself;
  // with several, earlier ones win.
  static Status applyMergeKey(Value::Object& members, uint32_t line) {
    auto it = std::find_if(members.begin(), members.end(),
                           [](const Value::Member& m) { return m.first == "<<"; });
    if (it == members.end()) return okStatus();
    Value sources = std::move(it->second);
    members.erase(it);
    std::vector<const Value*> list;
    if (sources.isObject()) {
      list.push_back(&sources);
    } else if (sources.isArray()) {
      for (const Value& v : sources.asArray()) list.push_back(&v);
    }
    for (const Value* source : list) {
      if (!source->isObject()) {
        return Error("line " + std::to_string(line) +
                     ": the merge key << takes a mapping or a list of mappings");
      }
    }
    if (list.empty()) {
      return Error("line " + std::to_string(line) +
                   ": the merge key << takes a mapping or a list of mappings");
    }
    for (const Value* source : list) {
      for (const Value::Member& m : source->asObject()) {
        bool present = std::any_of(members.begin(), members.end(),
                                   [&](const Value::Member& x) { return x.first == m.first; });
        if (!present) members.push_back(m);
      }
    }
    return okStatus();
  }

  bool done() const { return done_; }

  // The 1-based line of an event in the whole file.
  uint32_t lineOf(const yaml_event_t& event) const {
    return static_cast<uint32_t>(event.start_mark.line + 1) + lineBase_;
  }
  Value takeRoot() { return std::move(root_); }

 private:
  Status checkBudget(size_t count, uint32_t line) const {
    if (count > limits_.maxValuesPerDocument - std::min(values_, limits_.maxValuesPerDocument)) {
      return Error("line " + std::to_string(line) + ": document has more than " +
                   std::to_string(limits_.maxValuesPerDocument) + " values");
    }
    return okStatus();
  }

  Status add(Value v, size_t count, uint32_t line) {
    if (Status st = checkBudget(count, line); !st.ok()) return st;
    values_ += count;
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
  size_t anchoredValues_ = 0;  // values copied into anchors_
  size_t aliasValues_ = 0;     // values created by expanding aliases
  uint32_t lineBase_;          // added to libyaml's 0-based lines: firstLine - 1
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

// libyaml's error as "line L, column C: problem context".
Error parseError(const yaml_parser_t& p, std::string_view text, uint32_t lineBase) {
  size_t line = p.problem_mark.line + 1;
  size_t column = p.problem_mark.column + 1;
  std::string detail;
  if (p.error == YAML_READER_ERROR) {
    // Reader errors (bad UTF-8, control characters) leave problem_mark unset and give a byte
    // offset instead.
    size_t offset = std::min(p.problem_offset, text.size());
    std::string_view before = text.substr(0, offset);
    line = 1 + static_cast<size_t>(std::count(before.begin(), before.end(), '\n'));
    size_t lineStart = before.rfind('\n');
    column = offset - (lineStart == std::string_view::npos ? 0 : lineStart + 1) + 1;
    if (p.problem_value >= 0) {
      char buf[48];
      std::snprintf(buf, sizeof(buf), " (byte 0x%02x at offset %zu)", p.problem_value & 0xff,
                    offset);
      detail = buf;
    }
  }
  line += lineBase;
  std::string msg = "line " + std::to_string(line) + ", column " + std::to_string(column) + ": ";
  msg += p.problem ? p.problem : "invalid YAML";
  msg += detail;
  if (p.context) msg += std::string(" ") + p.context;
  return Error(msg);
}

}  // namespace

Status readYamlDocuments(std::string_view text, const DocumentHandler& onDocument,
                         const ReaderLimits& limits, uint32_t firstLine) {
  const uint32_t lineBase = firstLine > 0 ? firstLine - 1 : 0;
  std::unique_ptr<yaml_parser_t, ParserDeleter> parser(new yaml_parser_t);
  if (!yaml_parser_initialize(parser.get())) {
    delete parser.release();
    return Error("cannot initialise the YAML parser");
  }
  yaml_parser_set_input_string(parser.get(), reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());
  DocumentBuilder builder(limits, lineBase);
  size_t index = 0;
  for (;;) {
    EventGuard g;
    if (!yaml_parser_parse(parser.get(), &g.event)) {
      std::memset(&g.event, 0, sizeof(g.event));  // nothing to delete
      return parseError(*parser, text, lineBase);
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
                     const ReaderLimits& limits, uint32_t firstLine) {
  return sniffFormat(text) == DocumentFormat::kJson
             ? readJsonDocuments(text, onDocument, limits)
             : readYamlDocuments(text, onDocument, limits, firstLine);
}

std::vector<std::pair<std::string_view, uint32_t>> splitYamlStream(std::string_view text,
                                                                   size_t targetBytes) {
  std::vector<std::pair<std::string_view, uint32_t>> pieces;
  size_t pieceStart = 0;
  uint32_t pieceLine = 1;
  uint32_t line = 1;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    size_t next = eol == std::string_view::npos ? text.size() : eol + 1;
    std::string_view l = text.substr(pos, next - pos);
    if (l.starts_with("%")) return {{text, 1}};  // directives bind to the next document: keep whole
    bool marker = l.starts_with("---") &&
                  (l.size() == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\r' || l[3] == '\n');
    if (marker && pos > pieceStart && pos - pieceStart >= targetBytes) {
      pieces.emplace_back(text.substr(pieceStart, pos - pieceStart), pieceLine);
      pieceStart = pos;
      pieceLine = line;
    }
    pos = next;
    ++line;
  }
  pieces.emplace_back(text.substr(pieceStart), pieceLine);
  return pieces;
}

}  // namespace capstan::control
