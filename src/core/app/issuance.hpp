// The issuance use case (R6 ⑥ → ⑧), written "prepare, hand over, then make
// it live": the certificate is made through the signer port and recorded
// pending; it goes live only when its .p12 has been handed over, and what
// is never handed over is revoked. Runs in a thread-pool thread.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/config/settings.hpp"
#include "core/ports/signer.hpp"
#include "core/ports/store.hpp"

namespace certgate {

// The user may not be issued a certificate now (gone, disabled, blocked, not registered).
struct IssuanceRefused : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// ⑥: revokes what an earlier attempt recorded but never handed over, makes
// the user's key, certificate and .p12 (protected by p12_password) and
// records the certificate pending: it does not log in, and the user's
// current certificate stays live. Throws IssuanceRefused, CaError (nothing
// recorded) or StoreError.
IssuedCertificate issue_pending(const Settings &settings, Store &store, const Signer &signer,
                                const std::string &user_id, const std::string &p12_password,
                                int64_t now, const P12Keys *p12_keys_ahead = nullptr);

// The .p12 was handed over (its download answered): the certificate goes
// live, superseding the user's previous one. StoreConflict when it is no
// longer pending (revoked meanwhile): then it must not be handed over.
void hand_over(Store &store, const std::string &serial, const std::string &user_id);

// The .p12 cannot reach the user: every pending certificate of the user is
// revoked. Returns their serials.
std::vector<std::string> abandon_issuance(Store &store, const std::string &user_id,
                                          const std::string &why);

// The download link of `serial` was lost: revokes it if it is still pending,
// in one transaction; false when a download answered meanwhile made it live
// (a live certificate is not taken back) or it is gone.
bool revoke_if_pending(Store &store, const std::string &serial, const std::string &user_id,
                       const std::string &why);

// R20, PC change in the portal: the user (who passed ④ and ⑤) revokes its
// live certificate `serial` before a new one is issued in the same flow.
// Revoked with reason superseded, in one transaction with its event (the
// revocation feed ends it on the protected path) and the mails: to the
// user, and for a general user to its organisation's master, each in its
// own language. False when it is no longer the user's live certificate.
bool self_revoke(const Settings &settings, Store &store, const std::string &user_id,
                 const std::string &serial);

}  // namespace certgate
