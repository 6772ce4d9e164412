// Text split into lines, for tests that compare command output or generated rules line by line.
// Header-only.
#pragma once

#include <sstream>
#include <string>
#include <vector>

namespace capstan::support {

// The lines of `text`, without their '\n' (a last line without one counts too).
inline std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

}  // namespace capstan::support
