/* certgate: comfort only; every step works without scripts (R19). ES5. */
/* The software keyboard (R14), the 発行中 panel of ⑦ and the automatic
   download of ⑧. ES5 only (no arrow functions, let/const, classes, template
   literals or fetch), so Edge's IE mode runs it; the strict CSP allows no
   inline script, so all of it is here. */
(function () {
  'use strict';

  var doc = document;
  var en = (doc.documentElement.getAttribute('lang') || 'ja') === 'en';
  var W = en ? {
    open: 'Software keyboard',
    close: 'Close the keyboard',
    title: 'Software keyboard for the password',
    upper: 'Upper case',
    lower: 'Lower case',
    symbol: 'Symbols',
    modes: 'Character type',
    keys: 'Keys',
    back: 'Delete one character',
    clear: 'Clear',
    typed: 'Characters entered: ',
    full: 'The password is at its maximum length.',
    upperKey: 'upper-case ',
    lowerKey: 'lower-case ',
    digitKey: 'digit ',
    progress: 'Issuing the certificate. Please wait and do not close this page.'
  } : {
    open: 'ソフトウェアキーボード',
    close: 'キーボードを閉じる',
    title: 'パスワード用ソフトウェアキーボード',
    upper: '英大文字',
    lower: '英小文字',
    symbol: '記号',
    modes: '文字の種類',
    keys: 'キー',
    back: '1文字削除',
    clear: 'すべて消去',
    typed: '入力済み文字数：',
    full: 'パスワードの最大桁数に達しました。',
    upperKey: '英大文字 ',
    lowerKey: '英小文字 ',
    digitKey: '数字 ',
    progress: '電子証明書を発行しています。画面を閉じずにお待ちください。'
  };

  // Names a screen reader can say for each symbol key: [English, Japanese].
  var SYMBOLS = {
    '!': ['exclamation mark', 'エクスクラメーション'], '"': ['double quote', 'ダブルクォーテーション'],
    '#': ['number sign', 'シャープ'], '$': ['dollar sign', 'ドル'], '%': ['percent sign', 'パーセント'],
    '&': ['ampersand', 'アンド'], "'": ['apostrophe', 'シングルクォーテーション'],
    '(': ['left parenthesis', '左かっこ'], ')': ['right parenthesis', '右かっこ'],
    '*': ['asterisk', 'アスタリスク'], '+': ['plus sign', 'プラス'], ',': ['comma', 'カンマ'],
    '-': ['hyphen', 'ハイフン'], '.': ['full stop', 'ピリオド'], '/': ['slash', 'スラッシュ'],
    ':': ['colon', 'コロン'], ';': ['semicolon', 'セミコロン'], '<': ['less-than sign', '小なり'],
    '=': ['equals sign', 'イコール'], '>': ['greater-than sign', '大なり'],
    '?': ['question mark', 'クエスチョン'], '@': ['at sign', 'アットマーク'],
    '[': ['left square bracket', '左角かっこ'], '\\': ['backslash', 'バックスラッシュ'],
    ']': ['right square bracket', '右角かっこ'], '^': ['caret', 'キャレット'],
    '_': ['underscore', 'アンダースコア'], '`': ['grave accent', 'バッククォート'],
    '{': ['left curly bracket', '左波かっこ'], '|': ['vertical bar', '縦線'],
    '}': ['right curly bracket', '右波かっこ'], '~': ['tilde', 'チルダ']
  };

  function each(list, fn) {
    for (var i = 0; i < list.length; i++) fn(list[i], i);
  }

  function on(el, type, fn) {
    el.addEventListener(type, fn, false);
  }

  function make(tag, className, text) {
    var el = doc.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.appendChild(doc.createTextNode(text));
    return el;
  }

  function show(el) { el.removeAttribute('hidden'); }
  function hide(el) { el.setAttribute('hidden', 'hidden'); }

  // A uniform integer below n, from the platform's random source when there
  // is one (IE 11 calls it msCrypto).
  function randomBelow(n) {
    var c = window.crypto || window.msCrypto;
    if (c && c.getRandomValues) {
      var limit = Math.floor(4294967296 / n) * n;
      var buf = new Uint32Array(1);
      do { c.getRandomValues(buf); } while (buf[0] >= limit);
      return buf[0] % n;
    }
    return Math.floor(Math.random() * n);
  }

  function shuffled(chars) {
    var a = chars.split('');
    for (var i = a.length - 1; i > 0; i--) {
      var j = randomBelow(i + 1);
      var t = a[i]; a[i] = a[j]; a[j] = t;
    }
    return a;
  }

  var DIGITS = '0123456789';
  var MODES = [
    { id: 'upper', label: W.upper, chars: 'ABCDEFGHIJKLMNOPQRSTUVWXYZ' + DIGITS },
    { id: 'lower', label: W.lower, chars: 'abcdefghijklmnopqrstuvwxyz' + DIGITS },
    { id: 'symbol', label: W.symbol, chars: '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~' }
  ];

  function keyLabel(ch) {
    if (SYMBOLS[ch]) return ch + ' ' + SYMBOLS[ch][en ? 0 : 1];
    if (ch >= '0' && ch <= '9') return ch + ' ' + W.digitKey.replace(/ $/, '');
    if (ch >= 'A' && ch <= 'Z') return ch + ' ' + W.upperKey.replace(/ $/, '');
    return ch + ' ' + W.lowerKey.replace(/ $/, '');
  }

  // One keyboard per password field, built when first opened and laid out
  // anew (shuffled) every time it opens.
  function Keyboard(input, opener) {
    var self = this;
    self.input = input;
    self.opener = opener;
    self.mode = 0;
    self.layout = null;
    self.panel = make('div', 'cg-keyboard');
    self.panel.id = 'cg-keyboard-' + input.id;
    self.panel.setAttribute('role', 'group');
    self.panel.setAttribute('aria-label', W.title);
    self.panel.setAttribute('data-target', input.id);
    hide(self.panel);

    self.panel.appendChild(make('p', 'cg-kb-title', W.title));

    var modes = make('div', 'cg-kb-modes');
    modes.setAttribute('role', 'group');
    modes.setAttribute('aria-label', W.modes);
    self.modeButtons = [];
    each(MODES, function (m, i) {
      var b = make('button', 'cg-kb-mode', m.label);
      b.type = 'button';
      b.setAttribute('data-mode', m.id);
      on(b, 'click', function () { self.setMode(i); });
      self.modeButtons.push(b);
      modes.appendChild(b);
    });
    self.panel.appendChild(modes);

    self.keys = make('div', 'cg-kb-keys');
    self.keys.setAttribute('role', 'group');
    self.keys.setAttribute('aria-label', W.keys);
    self.panel.appendChild(self.keys);

    var controls = make('div', 'cg-kb-controls');
    var back = make('button', 'cg-kb-back', W.back);
    back.type = 'button';
    on(back, 'click', function () {
      input.value = input.value.substring(0, Math.max(0, input.value.length - 1));
      self.changed();
    });
    var clear = make('button', 'cg-kb-clear', W.clear);
    clear.type = 'button';
    on(clear, 'click', function () { input.value = ''; self.changed(); });
    var close = make('button', 'cg-kb-close', W.close);
    close.type = 'button';
    on(close, 'click', function () { self.close(); opener.focus(); });
    controls.appendChild(back);
    controls.appendChild(clear);
    controls.appendChild(close);
    self.panel.appendChild(controls);

    // Says how many characters are in the field, never which.
    self.status = make('p', 'cg-kb-status');
    self.status.setAttribute('aria-live', 'polite');
    self.panel.appendChild(self.status);

    var anchor = opener.nextSibling;
    opener.parentNode.insertBefore(self.panel, anchor);
  }

  Keyboard.prototype.isOpen = function () {
    return !this.panel.hasAttribute('hidden');
  };

  Keyboard.prototype.open = function () {
    var layout = [];
    each(MODES, function (m) { layout.push(shuffled(m.chars)); });
    this.layout = layout;
    this.setMode(this.mode);
    this.changed();
    show(this.panel);
    this.opener.setAttribute('aria-expanded', 'true');
    var first = this.keys.getElementsByTagName('button')[0];
    if (first) first.focus();
  };

  Keyboard.prototype.close = function () {
    hide(this.panel);
    this.opener.setAttribute('aria-expanded', 'false');
  };

  Keyboard.prototype.setMode = function (i) {
    var self = this;
    self.mode = i;
    each(self.modeButtons, function (b, j) {
      b.setAttribute('aria-pressed', j === i ? 'true' : 'false');
    });
    while (self.keys.firstChild) self.keys.removeChild(self.keys.firstChild);
    each(self.layout[i], function (ch) {
      var k = make('button', 'cg-key', ch);
      k.type = 'button';
      k.setAttribute('data-key', ch);
      k.setAttribute('aria-label', keyLabel(ch));
      on(k, 'click', function () { self.type(ch); });
      self.keys.appendChild(k);
    });
  };

  // maxlength is one more than the rule allows: a character too many still
  // goes in, and the server says "too long" instead of a wrong password.
  Keyboard.prototype.type = function (ch) {
    var max = this.input.maxLength > 0 ? this.input.maxLength : 64;
    if (this.input.value.length >= max) {
      this.status.innerHTML = '';
      this.status.appendChild(doc.createTextNode(W.full));
      return;
    }
    this.input.value += ch;
    this.changed();
  };

  Keyboard.prototype.changed = function () {
    this.status.innerHTML = '';
    this.status.appendChild(doc.createTextNode(W.typed + this.input.value.length));
    var ev;
    try {
      ev = doc.createEvent('Event');
      ev.initEvent('input', true, false);
      this.input.dispatchEvent(ev);
    } catch (e) { /* old engines: nothing listens anyway */ }
  };

  // Every password field gets the keyboard button: the one the template
  // placed (hidden until now), or one made here.
  function setUpKeyboards() {
    each(doc.querySelectorAll('input[type=password]'), function (input) {
      if (!input.id) return;
      var opener = doc.querySelector('.cg-keyboard-open[data-target="' + input.id + '"]');
      if (!opener) {
        opener = make('button', 'cg-keyboard-open', W.open);
        opener.type = 'button';
        opener.setAttribute('data-target', input.id);
        input.parentNode.insertBefore(opener, input.nextSibling);
      }
      opener.setAttribute('aria-controls', 'cg-keyboard-' + input.id);
      opener.setAttribute('aria-expanded', 'false');
      show(opener);
      var keyboard = null;
      on(opener, 'click', function () {
        if (!keyboard) keyboard = new Keyboard(input, opener);
        if (keyboard.isOpen()) keyboard.close(); else keyboard.open();
      });
    });
  }

  // ⑦ is a screen of its own (電子証明書発行中): the panel's title becomes the
  // page's, and the step bar moves to its step.
  function showAsScreen(panel) {
    var title = panel.getAttribute('data-title');
    var step = parseInt(panel.getAttribute('data-step'), 10);
    if (title) {
      var h1 = doc.getElementsByTagName('h1')[0];
      var cut = doc.title.indexOf(' - ');
      if (h1) h1.innerHTML = '';
      if (h1) h1.appendChild(doc.createTextNode(title));
      doc.title = title + (cut >= 0 ? doc.title.substring(cut) : '');
    }
    if (step > 0) {
      each(doc.querySelectorAll('.cg-steps li'), function (li, i) {
        li.className = i + 1 < step ? 'cg-done' : (i + 1 === step ? 'cg-current' : '');
        if (i + 1 === step) li.setAttribute('aria-current', 'step');
        else li.removeAttribute('aria-current');
      });
    }
  }

  // ⑥ → ⑦: while the certificate is made, the form gives way to the
  // 発行中 panel; a second click cannot send the form twice.
  function setUpProgress() {
    each(doc.querySelectorAll('form[data-progress], form.cg-issue-form'), function (form) {
      var panel = doc.getElementById(form.getAttribute('data-progress') || 'cg-progress');
      var sent = false;
      on(form, 'submit', function (ev) {
        if (sent) { ev.preventDefault(); return; }
        sent = true;
        if (panel) {
          showAsScreen(panel);
          show(panel);
          panel.setAttribute('aria-busy', 'true');
          if (panel.focus) {
            if (!panel.hasAttribute('tabindex')) panel.setAttribute('tabindex', '-1');
            panel.focus();
          }
        }
        window.setTimeout(function () {
          each(form.querySelectorAll('button'), function (b) { b.disabled = true; });
          each(doc.querySelectorAll('[data-hide-on-progress], .cg-cancel'), hide);
        }, 0);
      });
    });
  }

  // ⑧: the .p12 downloads by itself; the link stays for IE mode and for a
  // second try.
  function setUpDownload() {
    var link = doc.querySelector('a[data-auto-download]');
    if (!link) return;
    window.setTimeout(function () { window.location.href = link.href; }, 400);
  }

  // ⑧ ［閉じる］: closes the window where the browser lets a page do so;
  // otherwise it says how (Edge: the [×] of every window). Without scripts
  // the link leads back to the login screen.
  function setUpClose() {
    var link = doc.querySelector('a[data-close]');
    var note = doc.getElementById('cg-close-note');
    if (!link) return;
    on(link, 'click', function (ev) {
      if (ev.preventDefault) ev.preventDefault(); else ev.returnValue = false;
      window.close();
      window.setTimeout(function () { if (note) show(note); }, 300);
    });
  }

  function start() {
    setUpKeyboards();
    setUpProgress();
    setUpDownload();
    setUpClose();
  }

  if (doc.readyState === 'loading') on(doc, 'DOMContentLoaded', start); else start();
})();
