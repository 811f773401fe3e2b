// Katib push mode without a server: what KatibPushObserver reports per epoch, how times and
// values are written for katib-db-manager, and Connect's argument checks. The gRPC calls
// themselves are tested against a recording server in tests/integration/katib_push_test.sh.
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/katib/db_manager_client.h"
#include "service/katib/push_observer.h"

namespace cajal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Names(const std::vector<MetricObservation>& observations) {
  std::vector<std::string> names;
  for (const MetricObservation& o : observations) names.push_back(o.name);
  return names;
}

TEST(KatibPushTest, EpochObservationsAreTheEpochLinesMetrics) {
  EpochReport e;
  e.epoch = 3;
  e.loss = 0.31;
  e.accuracy = 0.88;
  e.has_val = true;
  e.val_loss = 0.35;
  e.val_accuracy = 0.87;
  const absl::Time t = absl::FromUnixSeconds(1700000000);
  const std::vector<MetricObservation> all =
      KatibPushObserver::EpochObservations(e, /*classification=*/true, t);
  EXPECT_THAT(Names(all), ElementsAre("loss", "accuracy", "val_loss", "val_accuracy"));
  EXPECT_EQ(all[3].value, 0.87);
  for (const MetricObservation& o : all) EXPECT_EQ(o.time, t);
  // Regression: no accuracies; no validation: no val_*.
  EXPECT_THAT(Names(KatibPushObserver::EpochObservations(e, /*classification=*/false, t)),
              ElementsAre("loss", "val_loss"));
  e.has_val = false;
  EXPECT_THAT(Names(KatibPushObserver::EpochObservations(e, /*classification=*/true, t)),
              ElementsAre("loss", "accuracy"));
}

TEST(KatibPushTest, TimestampsAreRfc3339UtcWithMicroseconds) {
  const absl::Time t = absl::FromUnixMicros(1700000000123456);
  EXPECT_EQ(KatibTimestamp(t), "2023-11-14T22:13:20.123456Z");
  EXPECT_EQ(KatibTimestamp(absl::FromUnixSeconds(0)), "1970-01-01T00:00:00.000000Z");
}

TEST(KatibPushTest, ValuesAreTextWithNineSignificantDigits) {
  EXPECT_EQ(KatibValue(0.87), "0.87");
  EXPECT_EQ(KatibValue(1.0 / 3.0), "0.333333333");
  EXPECT_EQ(KatibValue(2.5e-7), "2.5e-07");
}

TEST(KatibPushTest, ConnectNamesWhatIsMissing) {
  KatibPushOptions options;
  options.trial_name = "";
  EXPECT_THAT(KatibDbManagerClient::Connect(options).status().message(),
              HasSubstr("KATIB_TRIAL_NAME"));
  options.trial_name = "trial-1";
  options.address = "";
  const absl::Status no_address = KatibDbManagerClient::Connect(options).status();
  EXPECT_EQ(no_address.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(no_address.message(), HasSubstr("--katib-db-manager"));
  options.address = "127.0.0.1:1";
  options.timeout = absl::ZeroDuration();
  EXPECT_THAT(KatibDbManagerClient::Connect(options).status().message(),
              HasSubstr("--katib-push-timeout must be > 0"));
}

}  // namespace
}  // namespace cajal
