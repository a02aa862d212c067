// Benchmark helpers: each figure is measured beside its baseline in the same run and printed
// as `bench <name>: ours <value> <unit>, <baseline> <value> <unit>, ratio <ours/baseline>`.
#ifndef BOOST_TORNADO_BENCH_HPP
#define BOOST_TORNADO_BENCH_HPP

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sched.h>

namespace bench {

// Seconds taken by fn(), best of `runs` (the least disturbed run).
template <class F>
double best_seconds(int runs, F&& fn) {
  double best = 1e300;
  for (int i = 0; i < runs; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// The middle value (of a copy).
inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

inline void report(const char* name, double ours, const char* baseline, double theirs, const char* unit) {
  std::printf("bench %s: ours %.1f %s, %s %.1f %s, ratio %.3f\n", name, ours, unit, baseline, theirs,
              unit, ours / theirs);
  std::fflush(stdout);
}

// Keeps the calling thread on one CPU (modulo the CPUs there are), so that two threads of a
// benchmark do not share a core with each other.
inline void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % std::max(1u, std::thread::hardware_concurrency()), &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

// BENCH_SCALE (default 1) scales the work, so CI can run a short pass.
inline double scale() {
  const char* s = std::getenv("BENCH_SCALE");
  return s ? std::max(0.001, std::atof(s)) : 1.0;
}

} // namespace bench

#endif
