// A log-linear latency histogram in the HDR style: exact below 2048, then
// 1024 sub-buckets per power of two, so every recorded value is kept within
// 0.1 % of its true value from nanoseconds to hours, in fixed memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace iomux {

class Histogram {
 public:
  static constexpr int kSubBits = 10;                     // 1024 sub-buckets
  static constexpr uint64_t kLinear = 2ull << kSubBits;  // exact below 2048
  static constexpr int kMaxBits = 44;                     // values up to 2^44 - 1
  static constexpr uint64_t kMaxValue = (1ull << kMaxBits) - 1;

  Histogram() : counts_(Index(kMaxValue) + 1, 0) {}

  void Record(uint64_t v) {
    if (v > kMaxValue) v = kMaxValue;
    counts_[Index(v)]++;
    total_++;
    sum_ += static_cast<double>(v);
    if (v < min_) min_ = v;
    if (v > max_) max_ = v;
  }

  void Merge(const Histogram& o) {
    for (size_t i = 0; i < counts_.size(); i++) counts_[i] += o.counts_[i];
    total_ += o.total_;
    sum_ += o.sum_;
    if (o.min_ < min_) min_ = o.min_;
    if (o.max_ > max_) max_ = o.max_;
  }

  uint64_t count() const { return total_; }
  uint64_t min() const { return total_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const { return total_ ? sum_ / static_cast<double>(total_) : 0; }

  // The smallest recorded-equivalent value v such that at least p % of the
  // values are <= v (the top of v's bucket, never above the true maximum).
  uint64_t Percentile(double p) const {
    if (total_ == 0) return 0;
    double want = p / 100.0 * static_cast<double>(total_);
    uint64_t rank = static_cast<uint64_t>(want);
    if (static_cast<double>(rank) < want || rank == 0) rank++;
    if (rank > total_) rank = total_;
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); i++) {
      seen += counts_[i];
      if (seen >= rank) {
        uint64_t top = Top(i);
        return top < max_ ? top : max_;
      }
    }
    return max_;
  }

  static size_t Index(uint64_t v) {
    if (v < kLinear) return static_cast<size_t>(v);
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - kSubBits;
    return static_cast<size_t>(kLinear + static_cast<uint64_t>(shift - 1) * (1ull << kSubBits) +
                               ((v >> shift) - (1ull << kSubBits)));
  }

  // The largest value that lands in bucket i.
  static uint64_t Top(size_t i) {
    if (i < kLinear) return i;
    uint64_t k = i - kLinear;
    int shift = static_cast<int>(k >> kSubBits) + 1;
    uint64_t sub = (k & ((1ull << kSubBits) - 1)) + (1ull << kSubBits);
    return ((sub + 1) << shift) - 1;
  }

 private:
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
  double sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace iomux
