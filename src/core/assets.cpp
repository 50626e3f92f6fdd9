// The portal's static assets, served under <prefix>assets/: the style sheet
// and the script. The script is plain ES5 (Edge's IE mode runs it) and only
// adds comfort: every step works as plain HTML forms (R19).

#include <map>
#include <string>

#include "core/pages.hpp"

namespace certgate {

const std::map<std::string, std::string> &builtin_assets() {
    static const std::map<std::string, std::string> assets = {
        {"certgate.css", R"CSS(body{margin:0;font-family:"Meiryo","Yu Gothic","Hiragino Sans",sans-serif;color:#1a1a1a;background:#f4f6f8}
.cg-header{display:flex;justify-content:space-between;align-items:center;background:#0b4f8a;color:#fff;padding:.6em 1.2em}
.cg-header a{color:#fff}
.cg-system{margin:0;font-weight:bold}
.cg-lang{margin:0}
.cg-main{max-width:44em;margin:1.5em auto;background:#fff;padding:1.5em 2em;border:1px solid #cfd8e3}
h1{font-size:1.3em;border-left:6px solid #0b4f8a;padding-left:.5em}
.cg-field{margin:1em 0}
.cg-field label{display:block;font-weight:bold;margin-bottom:.3em}
.cg-field input{font-size:1.1em;padding:.3em;width:16em}
.cg-buttons button,.cg-actions button{font-size:1em;padding:.5em 1.2em;margin:.3em .3em .3em 0;cursor:pointer}
.cg-primary{background:#0b4f8a;color:#fff;border:1px solid #083a66}
.cg-actions{display:flex;flex-wrap:wrap;border-top:1px solid #cfd8e3;margin-top:1em;padding-top:1em}
.cg-actions form{margin:0}
.cg-message{background:#fff3f3;border:1px solid #d33;color:#900;padding:.6em}
.cg-note{font-size:.9em;color:#444}
.cg-steps{display:flex;flex-wrap:wrap;list-style:none;padding:0;margin:0 0 1em;font-size:.8em}
.cg-steps li{padding:.3em .5em;margin:0 .2em .2em 0;background:#e8edf3;color:#333}
.cg-steps li.cg-done{background:#cfdbe8}
.cg-steps li.cg-current{background:#0b4f8a;color:#fff;font-weight:bold}
.cg-step-mark{margin-right:.2em}
.cg-lead{margin:.5em 0 1em}
.cg-rule{font-size:.85em;color:#444;margin:.3em 0}
.cg-required{color:#b00;font-size:.85em}
.cg-notes{font-size:.85em;color:#444}
.cg-cancel{display:inline}
.cg-cancel button{font-size:1em;padding:.5em 1.2em}
.cg-footer{text-align:center;font-size:.9em;color:#333;padding:1em}
.cg-footer span{margin:0 .4em}
)CSS"},
        {"certgate.js", R"JS(/* certgate: comfort only; every step works without scripts (R19). ES5. */
(function () {
  'use strict';
})();
)JS"},
    };
    return assets;
}

}  // namespace certgate
