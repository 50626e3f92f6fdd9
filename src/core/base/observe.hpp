// What the worker watches without the core knowing nginx: committed audit
// events and failures of a dependency. The nginx glue installs one observer
// per process (metrics in shared memory, the audit export); certgatectl and
// the unit tests install none. Called from thread-pool threads: an observer
// must be quick and thread-safe.
#pragma once

namespace certgate {

struct Event;

enum class Dependency { memcached, store, smtp };

class Observer {
  public:
    virtual ~Observer() = default;
    virtual void event(const Event &e) noexcept = 0;  // after its transaction committed
    virtual void dependency_error(Dependency d) noexcept = 0;
};

void set_observer(Observer *o) noexcept;  // nullptr: none
void note_event(const Event &e) noexcept;
void note_dependency_error(Dependency d) noexcept;

}  // namespace certgate
