/* Symbol -> instrument id, looked up from a span of the frame without
 * allocating (keys are views into strings owned by the table).  The last symbol
 * found is checked first: a feed's frames mostly repeat it, and a compare of a few
 * bytes is cheaper than hashing them. */
#ifndef XCOL_SYMTAB_H
#define XCOL_SYMTAB_H
#include <cstring>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

namespace xcol {
struct SymTab {
    std::deque<std::string> names;
    std::unordered_map<std::string_view, int> ids;
    mutable std::string_view last;
    mutable int last_id = -1;
    int find(const char *p, size_t n) const {
        if (n == last.size() && n && std::memcmp(p, last.data(), n) == 0)
            return last_id;
        auto it = ids.find(std::string_view(p, n));
        if (it == ids.end())
            return -1;
        last = it->first;
        last_id = it->second;
        return it->second;
    }
    void add(const char *p, size_t n, int id) {
        names.emplace_back(p, n);
        ids[std::string_view(names.back())] = id;
        last = std::string_view();
        last_id = -1;
    }
};
}  // namespace xcol
#endif
