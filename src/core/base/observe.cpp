#include "core/base/observe.hpp"

#include <atomic>

namespace certgate {

namespace {
std::atomic<Observer *> the_observer{nullptr};
}

void set_observer(Observer *o) noexcept { the_observer.store(o); }

void note_event(const Event &e) noexcept {
    if (Observer *o = the_observer.load()) o->event(e);
}

void note_dependency_error(Dependency d) noexcept {
    if (Observer *o = the_observer.load()) o->dependency_error(d);
}

}  // namespace certgate
