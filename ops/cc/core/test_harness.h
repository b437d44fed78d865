// The few lines every C++ core test program shares: EXPECT and a runner.
#ifndef PRETRAIN_RECORDS_OPS_CC_CORE_TEST_HARNESS_H_
#define PRETRAIN_RECORDS_OPS_CC_CORE_TEST_HARNESS_H_

#include <cstdio>
#include <functional>
#include <utility>
#include <vector>

namespace pretrain_records {

inline int g_failures = 0;

#define EXPECT(cond)                                                           \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond); \
      ++::pretrain_records::g_failures;                                        \
    }                                                                          \
  } while (0)

using TestList = std::vector<std::pair<const char*, std::function<void()>>>;

// Runs every test, prints PASS/FAIL per test and a total; the exit code of main.
inline int RunTests(const TestList& tests) {
  int failed_tests = 0;
  for (const auto& [name, test] : tests) {
    const int before = g_failures;
    test();
    const bool ok = g_failures == before;
    failed_tests += !ok;
    std::printf("%s %s\n", ok ? "PASS" : "FAIL", name);
  }
  std::printf("%d passed, %d failed\n", static_cast<int>(tests.size()) - failed_tests,
              failed_tests);
  return failed_tests == 0 ? 0 : 1;
}

}  // namespace pretrain_records

#endif  // PRETRAIN_RECORDS_OPS_CC_CORE_TEST_HARNESS_H_
