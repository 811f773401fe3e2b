// SIGTERM for `cajal train`: Kubernetes evicting the pod, a rank's SIGTERM under mpirun. It
// asks the run to stop at the next step boundary (and checkpoint, with --checkpoint_dir).
//
//   TermSignal term;  // before any thread starts (MPI's, OpenMP's): they inherit the mask
//   ... if (term.received()) stop ...
//
// The signal is blocked in the creating thread (and so in every thread started after it) and
// taken with sigwait on a thread of its own. Create it before MPI_Init: a thread that does not
// block SIGTERM would take the signal's default action and end the process.
#ifndef CAJAL_SERVICE_CLI_TERM_SIGNAL_H_
#define CAJAL_SERVICE_CLI_TERM_SIGNAL_H_

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <thread>

namespace cajal {

class TermSignal {
 public:
  TermSignal() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    thread_ = std::thread([this] {
      int sig = 0;
      if (sigwait(&set_, &sig) == 0 && !done_.load()) received_.store(true);
    });
  }
  ~TermSignal() {
    // Wake the waiting thread if no signal came, and restore the mask.
    done_.store(true);
    if (!received_.load()) pthread_kill(thread_.native_handle(), SIGTERM);
    thread_.join();
    pthread_sigmask(SIG_UNBLOCK, &set_, nullptr);
  }
  TermSignal(const TermSignal&) = delete;
  TermSignal& operator=(const TermSignal&) = delete;

  bool received() const { return received_.load(std::memory_order_relaxed); }

 private:
  sigset_t set_;
  std::atomic<bool> received_{false};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_CLI_TERM_SIGNAL_H_
