// The job state machine (every pair of states), job ids, and the event log watchers read.
#include "service/server/job_state.h"

#include <memory>
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/server/event_log.h"

namespace cajal {
namespace {

using ::testing::HasSubstr;
using v1::JobState;

constexpr JobState kStates[] = {v1::JOB_STATE_UNSPECIFIED, v1::JOB_STATE_QUEUED,
                                v1::JOB_STATE_RUNNING,     v1::JOB_STATE_SUCCEEDED,
                                v1::JOB_STATE_FAILED,      v1::JOB_STATE_CANCELLING,
                                v1::JOB_STATE_CANCELLED};

TEST(JobStateTest, ExactlyTheDocumentedTransitionsAreAllowed) {
  const std::set<std::pair<JobState, JobState>> allowed = {
      {v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING},
      {v1::JOB_STATE_QUEUED, v1::JOB_STATE_CANCELLED},
      {v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED},
      {v1::JOB_STATE_RUNNING, v1::JOB_STATE_FAILED},
      {v1::JOB_STATE_RUNNING, v1::JOB_STATE_CANCELLING},
      {v1::JOB_STATE_CANCELLING, v1::JOB_STATE_CANCELLED},
  };
  for (JobState from : kStates) {
    for (JobState to : kStates) {
      EXPECT_EQ(IsAllowedTransition(from, to), allowed.count({from, to}) == 1)
          << StateName(from) << " -> " << StateName(to);
    }
  }
}

TEST(JobStateTest, TerminalStatesAndNames) {
  std::set<JobState> terminal;
  for (JobState s : kStates) {
    if (IsTerminal(s)) terminal.insert(s);
  }
  EXPECT_EQ(terminal, (std::set<JobState>{v1::JOB_STATE_SUCCEEDED, v1::JOB_STATE_FAILED,
                                          v1::JOB_STATE_CANCELLED}));
  EXPECT_EQ(StateName(v1::JOB_STATE_CANCELLING), "CANCELLING");
}

TEST(JobStateTest, IdsAre32LowercaseHexAndFresh) {
  std::set<std::string> ids;
  for (int i = 0; i < 100; ++i) {
    const std::string id = NewJobId();
    EXPECT_TRUE(ValidateJobId(id).ok()) << id;
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 100u);
  for (const std::string& bad : {"../" + std::string(29, 'a'), std::string(31, 'a'),
                                 std::string(33, 'a'), std::string(32, 'A'), std::string()}) {
    absl::Status s = ValidateJobId(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(s.message(), HasSubstr("32 lowercase hex"));
  }
}

class CountingListener : public EventListener {
 public:
  void OnEvents() override { ++calls; }
  int calls = 0;
};

v1::JobEvent Event(int64_t sequence) {
  v1::JobEvent e;
  e.set_sequence(sequence);
  return e;
}

TEST(EventLogTest, ReadsInOrderAndEndsOnlyWhenClosedAndRead) {
  EventLog log;
  for (int i = 0; i < 5; ++i) log.Append(Event(i));
  std::vector<v1::JobEvent> out;
  EXPECT_FALSE(log.Read(1, 2, &out));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].sequence(), 1);
  EXPECT_EQ(out[1].sequence(), 2);
  out.clear();
  EXPECT_FALSE(log.Read(3, 100, &out)) << "open: more may come";
  EXPECT_EQ(out.size(), 2u);
  log.Close();
  out.clear();
  EXPECT_FALSE(log.Read(0, 4, &out)) << "closed, but one event is still unread";
  out.clear();
  EXPECT_TRUE(log.Read(4, 4, &out));
  EXPECT_EQ(out.size(), 1u);
  EXPECT_EQ(log.size(), 5);
}

TEST(EventLogTest, ListenersAreWokenBoundedAndDroppedWhenGone) {
  EventLog log;
  auto a = std::make_shared<CountingListener>();
  auto b = std::make_shared<CountingListener>();
  EXPECT_TRUE(log.Subscribe(a, /*max=*/2));
  EXPECT_TRUE(log.Subscribe(b, /*max=*/2));
  auto c = std::make_shared<CountingListener>();
  EXPECT_FALSE(log.Subscribe(c, /*max=*/2)) << "the third is over the limit";
  log.Append(Event(0));
  EXPECT_EQ(a->calls, 1);
  EXPECT_EQ(b->calls, 1);
  EXPECT_EQ(c->calls, 0);
  b.reset();  // a watcher that left frees its place
  EXPECT_TRUE(log.Subscribe(c, /*max=*/2));
  log.Close();
  EXPECT_EQ(a->calls, 2);
  EXPECT_EQ(c->calls, 1);
}

}  // namespace
}  // namespace cajal
