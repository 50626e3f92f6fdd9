// The mailer port: hands one mail to the relay. The outbox (app/outbox.hpp)
// sends through it; adapters/mail.hpp's RelayMailer is SMTP, SMTPS or a
// Maildir, unit tests use a fake.
#pragma once

#include <cstdint>
#include <ctime>
#include <stdexcept>
#include <string>

namespace certgate {

struct MailMessage {
    std::string to;  // a bare address: user@example.jp
    std::string subject;
    std::string body;  // UTF-8 plain text, lines end in \n
    // Empty: one is made up. The outbox gives each mail a fixed one, so a mail
    // sent twice after a crash can be recognised as the same mail.
    std::string message_id;
    time_t date = 0;  // 0: now
    // When the mail is no use any more (an auth code's end): not sent after
    // it, and its body wiped from the outbox. 0: never.
    int64_t expires_at = 0;
};

// A mail could not be sent. what() names the relay, the step and the relay's
// answer, e.g. "SMTP relay 127.0.0.1:2525 refused RCPT TO:<x@y>: 550 5.1.1 ...".
class MailError : public std::runtime_error {
  public:
    enum class Kind {
        temporary,    // try again later: 4xx, a timeout, a dropped connection
        permanent,    // this mail will never go: 5xx for the recipient or message
        unreachable,  // the relay (or Maildir) cannot take any mail now: connect,
                      // TLS, login or MAIL FROM failed; the rest of a batch waits
        uncertain,    // the message went out but its acceptance never came back in
                      // time: it may have been delivered, so it is not sent again
    };
    MailError(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
    Kind kind() const { return kind_; }
    bool permanent() const { return kind_ == Kind::permanent; }

  private:
    Kind kind_;
};

class Mailer {
  public:
    virtual ~Mailer() = default;
    // Blocks for at most about timeout_ms(). Throws MailError.
    virtual void send(const MailMessage& message) = 0;
    // The sender's domain, for the outbox's fixed Message-IDs.
    virtual std::string message_id_domain() const = 0;
    // How long one send() may take, so an outbox lease outlasts it.
    virtual int timeout_ms() const = 0;
};

}  // namespace certgate
