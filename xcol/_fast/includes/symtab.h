/* Symbol -> instrument id, looked up from a span of the frame without
 * allocating (keys are views into strings owned by the table). */
#ifndef XCOL_SYMTAB_H
#define XCOL_SYMTAB_H
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

namespace xcol {
struct SymTab {
    std::deque<std::string> names;
    std::unordered_map<std::string_view, int> ids;
    int find(const char *p, size_t n) const {
        auto it = ids.find(std::string_view(p, n));
        return it == ids.end() ? -1 : it->second;
    }
    void add(const char *p, size_t n, int id) {
        names.emplace_back(p, n);
        ids[std::string_view(names.back())] = id;
    }
};
}  // namespace xcol
#endif
