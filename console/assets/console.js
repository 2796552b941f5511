// tswgate console: plain JavaScript, no dependencies, nothing from another
// host. The credential lives in memory and in this tab's sessionStorage,
// and is sent only as "Authorization: Bearer" to this gateway's token API.
// Secrets are never logged, never put in a URL, and removed from the page
// when their panel is closed.
'use strict';

(function () {
  // --- Where the API is ------------------------------------------------
  // Mounted at <base>console/, the token API is <base>v1/tokens:
  // /console/ -> /v1/tokens, /tswgate/console/ -> /tswgate/v1/tokens.
  function apiBaseFor(pathname) {
    const i = pathname.lastIndexOf('console/');
    const base = i >= 0 ? pathname.slice(0, i) : '/';
    return base + 'v1/tokens';
  }
  const API = apiBaseFor(location.pathname);
  // The project policy endpoint, beside the tokens': /v1/policy.
  const POLICY_API = API.slice(0, -'tokens'.length) + 'policy';
  document.documentElement.dataset.api = API;

  const TOKEN_RE = /^tsw_[0-9A-Za-z]{20}:tswsk_[0-9A-Za-z]{36}$/;
  const STORE_CRED = 'tswgate.console.credential';
  const STORE_PROJECT = 'tswgate.console.project';
  const MAX_NAME_BYTES = 100;

  const $ = (id) => document.getElementById(id);
  const el = {
    alert: $('alert'), status: $('status'), who: $('who'), whoText: $('who-text'), signOut: $('sign-out'),
    signIn: $('sign-in'), signInForm: $('sign-in-form'), credential: $('credential'),
    signInProjectField: $('sign-in-project-field'), signInProject: $('sign-in-project'),
    policy: $('policy'), tokens: $('tokens'), tokensHeading: $('tokens-heading'), projectLabel: $('project-label'),
    projectForm: $('project-form'), project: $('project'), tzNote: $('tz-note'),
    caption: $('token-caption'), rows: $('token-rows'), empty: $('empty'), more: $('more'), refresh: $('refresh'),
    genOpen: $('generate-open'), genDialog: $('generate-dialog'), genForm: $('generate-form'),
    genName: $('gen-name'), genRole: $('gen-role'), genExpiry: $('gen-expiry'), genError: $('gen-error'),
    genCancel: $('generate-cancel'), genSubmit: $('generate-submit'),
    secretDialog: $('secret-dialog'), secretHeading: $('secret-heading'), secretMessage: $('secret-message'),
    secret: $('secret'), secretCopy: $('secret-copy'), secretCopied: $('secret-copied'), secretDone: $('secret-done'),
    confirmDialog: $('confirm-dialog'), confirmHeading: $('confirm-heading'), confirmText: $('confirm-text'),
    confirmGraceField: $('confirm-grace-field'), confirmGrace: $('confirm-grace'),
    confirmCancel: $('confirm-cancel'), confirmOk: $('confirm-ok'),
    genScopes: $('gen-scopes'), genIPs: $('gen-ips'),
    accessDialog: $('access-dialog'), accessForm: $('access-form'), accessText: $('access-text'),
    accessScopes: $('access-scopes'), accessIPs: $('access-ips'), accessError: $('access-error'),
    accessCancel: $('access-cancel'), accessSubmit: $('access-submit'),
  };

  // The permissions a token's scopes may name: the route table's, then
  // token management's (tokens.read, tokens.write).
  const PERMISSIONS = ['billing.read', 'billing.write', 'compute.read', 'compute.write', 'network.read',
    'network.write', 'storage.read', 'storage.write', 'ssh_keys.read', 'ssh_keys.write', 'catalog.read',
    'catalog.write', 'tags.read', 'tags.write', 'search.read', 'search.write', 'tokens.read', 'tokens.write'];
  document.querySelectorAll('.perm-list').forEach((n) => { n.textContent = PERMISSIONS.join(', '); });

  // splitList splits a field into its items (commas, white space, lines).
  function splitList(v) { return v.split(/[\s,]+/).filter((x) => x !== ''); }

  // accessSummary describes a token's scopes and address ranges.
  function accessSummary(tok) {
    const scopes = tok.scopes && tok.scopes.length ? tok.scopes.join(', ') : 'role default';
    const ips = tok.allowed_ips && tok.allowed_ips.length ? tok.allowed_ips.join(', ') : 'any address';
    return 'Scopes: ' + scopes + ' · IPs: ' + ips;
  }

  // --- Session ---------------------------------------------------------
  const session = { credential: '', project: 0, ownerToken: false, cursor: '', policy: null };

  function storageGet(key) {
    try { return sessionStorage.getItem(key) || ''; } catch (e) { return ''; }
  }
  function storageSet(key, value) {
    try { sessionStorage.setItem(key, value); } catch (e) { /* memory only */ }
  }
  function storageClear() {
    try { sessionStorage.removeItem(STORE_CRED); sessionStorage.removeItem(STORE_PROJECT); } catch (e) { /* none */ }
  }
  function isOwnerToken(cred) { return TOKEN_RE.test(cred); }
  function credentialTokenID() { return session.ownerToken ? session.credential.split(':')[0] : ''; }

  // --- Messages ----------------------------------------------------------
  function clearMessages() {
    el.alert.replaceChildren();
    el.status.textContent = '';
  }
  function showError(err) {
    el.status.textContent = '';
    const parts = [document.createTextNode(err.message || String(err))];
    if (err.errors && err.errors.length) {
      const ul = document.createElement('ul');
      for (const p of err.errors) {
        const li = document.createElement('li');
        li.textContent = p;
        ul.append(li);
      }
      parts.push(ul);
    }
    el.alert.replaceChildren(...parts);
  }
  function showStatus(text) {
    el.alert.replaceChildren();
    el.status.textContent = text;
  }

  // --- API -------------------------------------------------------------
  class APIError extends Error {
    constructor(status, code, message, errors) {
      super(message);
      this.status = status;
      this.code = code || '';
      this.errors = Array.isArray(errors) ? errors : [];
      // signedOut: the credential is of no use here, and the page signed
      // out showing this error.
      this.signedOut = false;
    }
  }

  // api calls the token API (root: another API beside it, whole path).
  async function api(method, path, body, root) {
    const headers = { Authorization: 'Bearer ' + session.credential, Accept: 'application/json' };
    const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error', referrerPolicy: 'no-referrer' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch((root === undefined ? API : root) + path, init);
    } catch (e) {
      throw new APIError(0, 'network_error', 'The gateway could not be reached. Check the connection and retry.', []);
    }
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok || !data || data.success === false) {
      const msg = (data && data.message) || ('The gateway answered HTTP ' + resp.status + '.');
      const err = new APIError(resp.status, data && data.code, msg, data && data.errors);
      // 401, or a token whose role may not use the API (an Accounting
      // token: 403 role_forbidden): signing in again is the way on.
      if (resp.status === 401 || (resp.status === 403 && err.code === 'role_forbidden')) {
        err.signedOut = true;
        signOut('Signed out: ' + msg);
      }
      throw err;
    }
    return data;
  }

  function listQuery(cursor) {
    const q = new URLSearchParams();
    if (!session.ownerToken) q.set('project_id', String(session.project));
    if (cursor) q.set('cursor', cursor);
    const s = q.toString();
    return s ? '?' + s : '';
  }

  // --- Formatting --------------------------------------------------------
  const timeZone = (Intl.DateTimeFormat().resolvedOptions().timeZone) || 'local time';
  const dateFormat = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZoneName: 'short',
  });
  function timeElement(iso, never) {
    if (!iso) return document.createTextNode(never);
    const d = new Date(iso);
    if (isNaN(d.getTime())) return document.createTextNode(iso);
    const t = document.createElement('time');
    t.dateTime = d.toISOString();
    t.title = d.toISOString();
    t.textContent = dateFormat.format(d);
    return t;
  }
  const roleNames = { owner: 'Owner', accounting: 'Accounting' };
  function roleName(r) { return roleNames[r] || r; }
  function statusOf(tok) {
    if (tok.status === 'revoked') return { key: 'revoked', text: 'Revoked' };
    if (tok.expires_at && new Date(tok.expires_at).getTime() <= Date.now()) return { key: 'expired', text: 'Expired' };
    if (tok.status === 'inactive') return { key: 'inactive', text: 'Inactive' };
    return { key: 'active', text: 'Active' };
  }
  // usageOf sums a token's usage_24h ({allowed, rate_limited, refused:
  // {code: count}}): refused counts rate_limited and every refusal code,
  // which the detail names one by one.
  function usageOf(u) {
    if (!u || typeof u !== 'object') return null;
    const count = (n) => (typeof n === 'number' && n > 0 ? n : 0);
    const parts = [];
    let refused = 0;
    if (count(u.rate_limited)) {
      refused += count(u.rate_limited);
      parts.push('rate_limited: ' + count(u.rate_limited));
    }
    if (u.refused && typeof u.refused === 'object') {
      for (const code of Object.keys(u.refused).sort()) {
        const n = count(u.refused[code]);
        if (!n) continue;
        refused += n;
        parts.push(code + ': ' + n);
      }
    } else {
      refused += count(u.refused);
    }
    return { allowed: count(u.allowed), refused, detail: parts.join(', ') };
  }
  function tokenLabel(tok) { return '“' + tok.name + '” (' + tok.display_id + ')'; }

  // --- Sign in / out -----------------------------------------------------
  function showSignIn(reason) {
    el.tokens.hidden = true;
    $('hooks').hidden = true;
    el.who.hidden = true;
    el.signIn.hidden = false;
    updateSignInProjectField();
    if (reason) showError({ message: reason });
    el.credential.focus();
  }

  function updateSignInProjectField() {
    el.signInProjectField.hidden = isOwnerToken(el.credential.value.trim());
  }

  // signOut forgets the credential and everything shown with it: open
  // dialogs close, and answers still to come are dropped (loadSeq,
  // hooksSeq), so that no project's tokens or webhooks show afterwards.
  function signOut(reason) {
    session.credential = '';
    session.project = 0;
    session.ownerToken = false;
    session.cursor = '';
    storageClear();
    loadSeq++;
    hooksSeq++;
    accessTok = null;
    for (const d of [el.genDialog, el.accessDialog, el.secretDialog, el.confirmDialog]) {
      if (d.open) d.close();
    }
    el.rows.replaceChildren();
    hooksEl.list.replaceChildren();
    el.credential.value = '';
    clearMessages();
    showSignIn(reason);
  }

  async function signIn(cred, project) {
    session.credential = cred;
    session.ownerToken = isOwnerToken(cred);
    session.project = session.ownerToken ? 0 : project;
    storageSet(STORE_CRED, cred);
    storageSet(STORE_PROJECT, session.ownerToken ? '' : String(project));
    el.signIn.hidden = true;
    el.credential.value = '';
    el.who.hidden = false;
    el.whoText.textContent = session.ownerToken
      ? 'Signed in with Owner token ' + cred.slice(0, 8) + '…'
      : 'Signed in with the admin key';
    el.projectForm.hidden = session.ownerToken;
    el.project.value = session.project ? String(session.project) : '';
    el.tokens.hidden = false;
    el.tzNote.textContent = 'Times are shown in your browser’s time zone (' + timeZone + ').';
    const ok = await loadTokens();
    if (ok) el.tokensHeading.focus();
  }

  el.credential.addEventListener('input', updateSignInProjectField);

  el.signInForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    clearMessages();
    const cred = el.credential.value.trim();
    if (!cred) {
      showError({ message: 'Enter the admin key or an Owner token.' });
      el.credential.focus();
      return;
    }
    let project = 0;
    if (!isOwnerToken(cred)) {
      if (/^tsw_/.test(cred)) {
        showError({ message: 'That looks like a token but is not a whole one: paste all of tsw_…:tswsk_….' });
        el.credential.focus();
        return;
      }
      project = parseProject(el.signInProject.value);
      if (!project) {
        showError({ message: 'Enter the Project ID (a positive whole number) whose tokens to manage.' });
        el.signInProject.focus();
        return;
      }
    }
    signIn(cred, project);
  });

  el.signOut.addEventListener('click', () => {
    signOut('');
    showStatus('Signed out.');
  });

  function parseProject(v) {
    const s = String(v).trim();
    if (!/^[1-9][0-9]{0,14}$/.test(s)) return 0; // exact as a JavaScript number
    return Number(s);
  }

  el.projectForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = parseProject(el.project.value);
    if (!p) {
      showError({ message: 'Enter the Project ID (a positive whole number).' });
      el.project.focus();
      return;
    }
    clearMessages();
    session.project = p;
    storageSet(STORE_PROJECT, String(p));
    loadTokens();
  });

  // --- The list ----------------------------------------------------------
  // Only the latest load shows its result: a refresh and the reload after
  // an action may overlap, and a page loaded by More is dropped when a
  // load started meanwhile.
  let loadSeq = 0;

  // A reload (Refresh, or after an action) shows at least as many tokens
  // as before, so that pages loaded with More stay; after a token is
  // generated or rotated it goes on to the page that holds the new token
  // (the list is oldest first). Either stops after MAX_RELOAD_PAGES pages.
  const MAX_RELOAD_PAGES = 20;

  // loadTokens loads the list from its first page. o.keep keeps as many
  // rows as are shown; o.wantID loads pages until that token is listed;
  // o.focusAfter runs once the list shows.
  async function loadTokens(o) {
    o = o || {};
    const seq = ++loadSeq;
    const wantRows = o.keep ? el.rows.children.length : 0;
    el.refresh.disabled = true;
    el.rows.setAttribute('aria-busy', 'true');
    try {
      const [data, policy] = await Promise.all([api('GET', listQuery('')), loadPolicy()]);
      if (seq !== loadSeq) return false;
      showPolicy(policy);
      const toks = Array.isArray(data.tokens) ? data.tokens.slice() : [];
      let cursor = data.next_cursor || '';
      const listed = (id) => toks.some((t) => t.id === id);
      for (let pages = 1; cursor && pages < MAX_RELOAD_PAGES &&
        (toks.length < wantRows || (o.wantID && !listed(o.wantID))); pages++) {
        const next = await api('GET', listQuery(cursor));
        if (seq !== loadSeq) return false;
        if (Array.isArray(next.tokens)) toks.push(...next.tokens);
        cursor = next.next_cursor || '';
      }
      if (data.project_id) session.project = data.project_id;
      el.projectLabel.textContent = session.project ? '· Project ' + session.project : '';
      el.caption.textContent = 'API tokens of project ' + session.project;
      el.rows.replaceChildren();
      appendTokens({ tokens: toks, next_cursor: cursor });
      if (o.focusAfter) o.focusAfter();
      loadHooks();
      return true;
    } catch (e) {
      // A token whose scopes lack tokens.read cannot list its project's
      // tokens: nothing here works for it, so it signs out with the reason.
      if (!e.signedOut && seq === loadSeq && e.code === 'permission_denied') {
        signOut('Signed out: ' + e.message);
        return false;
      }
      if (!e.signedOut && seq === loadSeq) showError(e);
      return false;
    } finally {
      if (seq === loadSeq) {
        el.refresh.disabled = false;
        el.rows.removeAttribute('aria-busy');
      }
    }
  }

  // loadPolicy reads the project's policy; null when it cannot (the list
  // still shows).
  async function loadPolicy() {
    try {
      const q = session.ownerToken ? '' : '?project_id=' + encodeURIComponent(String(session.project));
      const data = await api('GET', q, undefined, POLICY_API);
      return data.policy || null;
    } catch (e) {
      if (e.signedOut) throw e;
      return null;
    }
  }

  function showPolicy(p) {
    session.policy = p;
    const rules = [];
    if (p && p.max_lifetime) rules.push('tokens live at most ' + p.max_lifetime);
    if (p && p.require_expiry) rules.push('tokens must expire');
    if (p && p.rate_limit) rules.push('the project shares ' + p.rate_limit + ' requests/s (burst ' + (p.burst || Math.ceil(p.rate_limit)) + ')');
    el.policy.hidden = rules.length === 0;
    el.policy.textContent = rules.length ? 'Project policy: ' + rules.join('; ') + '.' : '';
  }

  // policyViolation says why tok breaks the project's lifetime policy, or
  // '' (the rules of auth.ProjectPolicy.LifetimeViolation).
  function policyViolation(tok) {
    const p = session.policy;
    if (!p || tok.revoked_at) return '';
    const max = (p.max_lifetime_seconds || 0) * 1000;
    if (!tok.expires_at) {
      if (p.require_expiry) return 'No expiry, and the project requires one.';
      if (max) return 'No expiry, and the project\'s maximum lifetime is ' + p.max_lifetime + '.';
      return '';
    }
    if (max && Date.parse(tok.expires_at) - Date.parse(tok.created_at) > max) {
      return 'Lives longer than the project\'s maximum of ' + p.max_lifetime + '.';
    }
    return '';
  }

  function appendTokens(data) {
    const toks = Array.isArray(data.tokens) ? data.tokens : [];
    for (const t of toks) el.rows.append(tokenRow(t));
    session.cursor = data.next_cursor || '';
    el.more.hidden = !session.cursor;
    el.empty.hidden = el.rows.children.length > 0;
  }

  el.more.addEventListener('click', async () => {
    if (!session.cursor) return;
    const seq = loadSeq;
    el.more.disabled = true;
    try {
      const before = el.rows.children.length;
      const data = await api('GET', listQuery(session.cursor));
      if (seq !== loadSeq) return; // the list was loaded again meanwhile
      appendTokens(data);
      const first = el.rows.children[before];
      if (first) {
        const b = first.querySelector('button');
        if (b) b.focus();
      }
    } catch (e) {
      if (!e.signedOut) showError(e);
    } finally {
      el.more.disabled = false;
    }
  });

  el.refresh.addEventListener('click', () => {
    clearMessages();
    loadTokens({ keep: true });
  });

  function cell(label, className, ...content) {
    const td = document.createElement('td');
    td.setAttribute('role', 'cell');
    td.dataset.label = label;
    if (className) td.className = className;
    td.append(...content);
    return td;
  }

  function button(text, accessibleSuffix, className, action, tok) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = className + ' small';
    b.dataset.action = action;
    b.dataset.id = tok.id;
    b.append(text);
    const hidden = document.createElement('span');
    hidden.className = 'vh';
    hidden.textContent = ' ' + accessibleSuffix;
    b.append(hidden);
    b.addEventListener('click', () => onAction(action, tok, b));
    return b;
  }

  function tokenRow(tok) {
    const tr = document.createElement('tr');
    tr.setAttribute('role', 'row');
    tr.dataset.id = tok.id;
    const st = statusOf(tok);
    const badge = document.createElement('span');
    badge.className = 'badge ' + st.key;
    badge.textContent = st.text;

    const lastUsed = document.createElement('span');
    lastUsed.append(timeElement(tok.last_used, 'Never'));
    const usedCell = cell('Last Used', 'col-used', lastUsed);
    const u = usageOf(tok.usage_24h);
    if (u) {
      const us = document.createElement('span');
      us.className = 'usage';
      us.textContent = 'Last 24 h: ' + u.allowed + ' allowed, ' + u.refused + ' refused';
      if (u.detail) us.title = u.detail;
      usedCell.append(us);
    }

    const actions = document.createElement('div');
    actions.className = 'actions';
    const label = 'token ' + tokenLabel(tok);
    if (st.key !== 'revoked') {
      if (tok.status === 'inactive') {
        actions.append(button('Activate', label, 'secondary', 'activate', tok));
      } else {
        actions.append(button('Deactivate', label, 'secondary', 'deactivate', tok));
      }
      actions.append(button('Edit access', label, 'secondary', 'access', tok));
      actions.append(button('Rotate', label, 'secondary', 'rotate', tok));
      actions.append(button('Revoke', label, 'danger', 'revoke', tok));
    } else {
      actions.append('—');
    }

    const access = document.createElement('span');
    access.className = 'access';
    access.textContent = accessSummary(tok);
    const statusCell = cell('Status', 'col-status', badge);
    const violation = policyViolation(tok);
    if (violation) {
      const v = document.createElement('span');
      v.className = 'badge violation';
      v.textContent = 'Breaks policy';
      v.title = violation + ' It keeps working: rotate it with a shorter lifetime, or revoke it.';
      const why = document.createElement('span');
      why.className = 'vh';
      why.textContent = ' (' + violation + ')';
      v.append(why);
      statusCell.append(' ', v);
    }
    const id = document.createElement('span');
    id.textContent = tok.display_id || tok.id;
    id.title = tok.id;
    tr.append(
      cell('Token Id', 'col-id', id),
      cell('Display Name', 'col-name', tok.name, access),
      cell('Role', 'col-role', roleName(tok.role)),
      statusCell,
      cell('Created (Local Time)', 'col-created', timeElement(tok.created_at, '—')),
      usedCell,
      cell('Expires', 'col-expires', timeElement(tok.expires_at, 'Never')),
      cell('Actions', 'col-actions', actions),
    );
    return tr;
  }

  // --- Actions -----------------------------------------------------------
  const actionText = {
    deactivate: {
      title: 'Deactivate token?', ok: 'Deactivate', danger: false,
      body: (t) => 'Requests with ' + tokenLabel(t) + ' will be refused (token_inactive) until it is activated again.',
    },
    activate: {
      title: 'Activate token?', ok: 'Activate', danger: false,
      body: (t) => tokenLabel(t) + ' will be accepted again.',
    },
    rotate: {
      title: 'Rotate token?', ok: 'Rotate', danger: false,
      body: (t) => 'A new token with the name, role and lifetime of ' + tokenLabel(t) +
        ' is generated and shown once. The old one is then revoked, or expires after the time you choose.',
    },
    revoke: {
      title: 'Revoke token?', ok: 'Revoke', danger: true,
      body: (t) => 'Requests with ' + tokenLabel(t) + ' will be refused (token_revoked) from now on. This cannot be undone.',
    },
  };

  async function onAction(action, tok, opener) {
    if (action === 'access') {
      openAccess(tok, opener);
      return;
    }
    const text = actionText[action];
    let body = text.body(tok);
    const own = tok.id === credentialTokenID();
    if (own && action === 'rotate') body += ' This is the token you signed in with: sign in with the new one afterwards.';
    else if (own && action !== 'activate') body += ' This is the token you signed in with: you will be signed out.';
    const answer = await confirmDialog({
      title: text.title, body, ok: text.ok + ' ' + tok.name, okShort: text.ok, danger: text.danger,
      grace: action === 'rotate', opener,
    });
    if (!answer.ok) return;
    clearMessages();
    const path = '/' + encodeURIComponent(tok.id);
    try {
      let data;
      switch (action) {
        case 'deactivate':
          data = await api('PATCH', path, { status: 'inactive' });
          break;
        case 'activate':
          data = await api('PATCH', path, { status: 'active' });
          break;
        case 'revoke':
          data = await api('DELETE', path);
          break;
        case 'rotate':
          data = await api('POST', path + '/rotate', { grace: answer.grace });
          break;
      }
      const message = data.message || 'Done.';
      if (action === 'rotate') {
        await loadTokens({ keep: true, wantID: data.token.id });
        showSecret('Token rotated', message, data.token, () => focusRow(data.token.id, 'rotate'));
      } else {
        await loadTokens({
          keep: true,
          wantID: action === 'revoke' ? '' : tok.id,
          focusAfter: () => focusRow(tok.id, action === 'deactivate' ? 'activate' : action === 'activate' ? 'deactivate' : ''),
        });
        showStatus(message);
      }
    } catch (e) {
      if (!e.signedOut) {
        showError(e);
        if (opener.isConnected) opener.focus();
      }
    }
  }

  // focusRow focuses a token's action button, or the list's heading when
  // the token or the button is gone.
  function focusRow(id, action) {
    const b = action && el.rows.querySelector('button[data-id="' + CSS.escape(id) + '"][data-action="' + action + '"]');
    if (b) b.focus(); else el.tokensHeading.focus();
  }

  // confirmDialog asks to confirm an action; Escape and Cancel decline.
  function confirmDialog(o) {
    return new Promise((resolve) => {
      const d = el.confirmDialog;
      el.confirmHeading.textContent = o.title;
      el.confirmText.textContent = o.body;
      el.confirmOk.textContent = o.okShort;
      el.confirmOk.setAttribute('aria-label', o.ok);
      el.confirmOk.className = o.danger ? 'danger' : 'primary';
      el.confirmGraceField.hidden = !o.grace;
      el.confirmGrace.value = '0s';
      let answered = false;
      const finish = (ok) => {
        if (answered) return;
        answered = true;
        el.confirmOk.removeEventListener('click', onOk);
        el.confirmCancel.removeEventListener('click', onCancel);
        d.removeEventListener('cancel', onEscape);
        d.removeEventListener('close', onClose);
        if (d.open) d.close();
        if (!ok && o.opener && o.opener.isConnected) o.opener.focus();
        resolve({ ok, grace: el.confirmGrace.value });
      };
      const onOk = () => finish(true);
      const onCancel = () => finish(false);
      const onEscape = (ev) => { ev.preventDefault(); finish(false); };
      // The close event comes later, in a task of its own: one left over
      // from the dialog's previous use may arrive now, while it is open.
      const onClose = () => { if (!d.open) finish(false); };
      el.confirmOk.addEventListener('click', onOk);
      el.confirmCancel.addEventListener('click', onCancel);
      d.addEventListener('cancel', onEscape);
      d.addEventListener('close', onClose);
      d.showModal();
      el.confirmCancel.focus();
    });
  }

  // --- Generate ------------------------------------------------------------
  let genOpener = null;
  el.genOpen.addEventListener('click', () => {
    genOpener = el.genOpen;
    el.genForm.reset();
    el.genError.textContent = '';
    el.genName.removeAttribute('aria-invalid');
    el.genDialog.showModal();
    el.genName.focus();
  });
  el.genCancel.addEventListener('click', () => el.genDialog.close());
  el.genDialog.addEventListener('close', () => {
    if (!el.genDialog.open && !el.secretDialog.open && genOpener) genOpener.focus();
  });

  el.genForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = el.genName.value.trim();
    let problem = '';
    if (!name) problem = 'Enter a Display Name.';
    else if (new TextEncoder().encode(name).length > MAX_NAME_BYTES) problem = 'The Display Name is longer than 100 bytes.';
    if (problem) {
      el.genError.textContent = problem;
      el.genName.setAttribute('aria-invalid', 'true');
      el.genName.focus();
      return;
    }
    el.genName.removeAttribute('aria-invalid');
    el.genError.textContent = '';
    const req = { name, role: el.genRole.value };
    if (session.project) req.project_id = session.project;
    if (el.genExpiry.value) req.expires_in = el.genExpiry.value;
    const scopes = splitList(el.genScopes.value);
    if (scopes.length) req.scopes = scopes;
    const ips = splitList(el.genIPs.value);
    if (ips.length) req.allowed_ips = ips;
    el.genSubmit.disabled = true;
    try {
      const data = await api('POST', '', req);
      el.genDialog.close();
      await loadTokens({ keep: true, wantID: data.token.id });
      showSecret('Token generated', data.message || '', data.token, () => focusRow(data.token.id, 'deactivate'));
    } catch (e) {
      if (!e.signedOut) {
        el.genError.textContent = e.message + (e.errors.length ? ' ' + e.errors.join('; ') : '');
        el.genName.focus();
      }
    } finally {
      el.genSubmit.disabled = false;
    }
  });

  // --- Edit access: scopes and address ranges ------------------------------
  let accessTok = null;
  let accessOpener = null;
  function openAccess(tok, opener) {
    accessTok = tok;
    accessOpener = opener;
    el.accessText.textContent = 'Scopes and allowed IP ranges of ' + tokenLabel(tok) + '.';
    el.accessScopes.value = (tok.scopes || []).join(', ');
    el.accessIPs.value = (tok.allowed_ips || []).join('\n');
    el.accessError.textContent = '';
    el.accessDialog.showModal();
    el.accessScopes.focus();
  }
  el.accessCancel.addEventListener('click', () => el.accessDialog.close());
  el.accessDialog.addEventListener('close', () => {
    if (!el.accessDialog.open && accessOpener && accessOpener.isConnected) accessOpener.focus();
  });
  el.accessForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const tok = accessTok;
    if (!tok) return;
    el.accessError.textContent = '';
    el.accessSubmit.disabled = true;
    try {
      const data = await api('PATCH', '/' + encodeURIComponent(tok.id), {
        scopes: splitList(el.accessScopes.value), allowed_ips: splitList(el.accessIPs.value),
      });
      accessOpener = null;
      el.accessDialog.close();
      await loadTokens({ keep: true, wantID: tok.id, focusAfter: () => focusRow(tok.id, 'access') });
      showStatus(data.message || 'Done.');
    } catch (e) {
      if (!e.signedOut) {
        el.accessError.textContent = e.message + (e.errors.length ? ' ' + e.errors.join('; ') : '');
        el.accessScopes.focus();
      }
    } finally {
      el.accessSubmit.disabled = false;
    }
  });

  // --- The secret, shown once ------------------------------------------------
  let afterSecret = null;
  function showSecret(heading, message, tok, after) {
    afterSecret = after;
    el.secretHeading.textContent = heading;
    el.secretMessage.textContent = message + ' Name: “' + tok.name + '”, role: ' + roleName(tok.role) + '.';
    el.secret.value = tok.token;
    el.secretCopied.textContent = '';
    el.secretDialog.showModal();
    el.secret.focus();
    el.secret.select();
  }

  // dismissSecret takes the secret out of the page as the panel closes.
  function dismissSecret() {
    el.secret.value = '';
    el.secretCopied.textContent = '';
    if (el.secretDialog.open) el.secretDialog.close();
    const after = afterSecret;
    afterSecret = null;
    if (after) after();
  }
  el.secretDone.addEventListener('click', dismissSecret);
  // Leaving the page, for another or into the back/forward cache, ends the
  // showing too: Back must not bring the secret again.
  window.addEventListener('pagehide', () => { if (el.secretDialog.open || el.secret.value) dismissSecret(); });
  el.secretDialog.addEventListener('cancel', (ev) => { ev.preventDefault(); dismissSecret(); }); // Escape
  el.secretDialog.addEventListener('close', () => { if (!el.secretDialog.open) dismissSecret(); });

  el.secretCopy.addEventListener('click', async () => {
    const value = el.secret.value;
    let copied = false;
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(value);
        copied = true;
      } catch (e) { copied = false; }
    }
    if (!copied) {
      el.secret.focus();
      el.secret.select();
      try { copied = document.execCommand('copy'); } catch (e) { copied = false; }
    }
    el.secretCopied.textContent = copied
      ? 'Copied to the clipboard.'
      : 'Copying failed: the token is selected, press Ctrl+C (⌘C) to copy it.';
  });


  // --- Webhooks --------------------------------------------------------------
  // The webhook API beside the token API, for the project shown:
  // <base>v1/projects/<p>/webhooks, or <base>v1/webhooks for an Owner
  // token on the public listener (its own project). Read-only here, with a
  // replay of a failed delivery; tswgate webhook manages endpoints.
  const hooksEl = { section: $('hooks'), list: $('hooks-list'), empty: $('hooks-empty'), refresh: $('hooks-refresh') };
  const HOOK_DELIVERIES = 5;
  let hooksSeq = 0;

  function hooksRoot() {
    const base = API.slice(0, -'tokens'.length);
    if (session.ownerToken && base !== '/v1/') return base + 'webhooks';
    return base + 'projects/' + session.project + '/webhooks';
  }

  // loadHooks shows the project's endpoints and their latest deliveries;
  // the section stays hidden where the webhook API is off (404).
  async function loadHooks() {
    const seq = ++hooksSeq;
    const root = hooksRoot();
    try {
      const data = await api('GET', '', undefined, root);
      const eps = Array.isArray(data.endpoints) ? data.endpoints : [];
      const blocks = [];
      for (const ep of eps) {
        const d = await api('GET', '/' + encodeURIComponent(ep.id) + '/deliveries?limit=' + HOOK_DELIVERIES, undefined, root);
        blocks.push(endpointBlock(ep, Array.isArray(d.deliveries) ? d.deliveries : [], root));
      }
      if (seq !== hooksSeq) return;
      hooksEl.list.replaceChildren(...blocks);
      hooksEl.empty.hidden = eps.length > 0;
      hooksEl.section.hidden = false;
    } catch (e) {
      if (seq !== hooksSeq) return;
      hooksEl.section.hidden = e.status === 404 || e.signedOut;
      if (!hooksEl.section.hidden) showError(e);
    }
  }

  function endpointBlock(ep, deliveries, root) {
    const box = document.createElement('div');
    box.className = 'hook';
    box.dataset.endpoint = ep.id;
    const head = document.createElement('h3');
    head.textContent = ep.url + (ep.enabled ? '' : ' (disabled)');
    const types = document.createElement('p');
    types.className = 'hint';
    types.textContent = 'Events: ' + (ep.types && ep.types.length ? ep.types.join(', ') : 'all');
    box.append(head, types);
    if (!deliveries.length) {
      const none = document.createElement('p');
      none.className = 'muted';
      none.textContent = 'No deliveries yet.';
      box.append(none);
      return box;
    }
    const table = document.createElement('table');
    const cap = document.createElement('caption');
    cap.className = 'vh';
    cap.textContent = 'Latest deliveries to ' + ep.url;
    const headRow = document.createElement('tr');
    for (const h of ['Event', 'State', 'Attempts', 'Last answer', 'Created', 'Next attempt', '']) {
      const th = document.createElement('th');
      th.scope = 'col';
      th.textContent = h;
      headRow.append(th);
    }
    const thead = document.createElement('thead');
    thead.append(headRow);
    const tbody = document.createElement('tbody');
    for (const d of deliveries) tbody.append(deliveryRow(ep, d, root));
    table.append(cap, thead, tbody);
    box.append(table);
    return box;
  }

  function deliveryRow(ep, d, root) {
    const tr = document.createElement('tr');
    tr.dataset.delivery = d.id;
    tr.dataset.state = d.state;
    const last = d.last_status ? 'HTTP ' + d.last_status : (d.last_error || '—');
    const replay = document.createElement('button');
    replay.type = 'button';
    replay.className = 'secondary';
    replay.textContent = 'Replay';
    replay.setAttribute('aria-label', 'Replay ' + d.event_type + ' to ' + ep.url);
    replay.hidden = !(d.state === 'dead' || d.state === 'delivered' || d.state === 'canceled');
    replay.addEventListener('click', async () => {
      replay.disabled = true;
      try {
        await api('POST', '/' + encodeURIComponent(ep.id) + '/deliveries/' + encodeURIComponent(d.id) + '/replay', {}, root);
        showStatus('Delivery ' + d.id + ' queued again.');
        loadHooks();
      } catch (e) {
        if (!e.signedOut) showError(e);
        replay.disabled = false;
      }
    });
    for (const text of [d.event_type, d.state, String(d.attempts), last]) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.append(td);
    }
    for (const node of [timeElement(d.created_at, '—'), timeElement(d.next_attempt, '—'), replay]) {
      const td = document.createElement('td');
      td.append(node);
      tr.append(td);
    }
    return tr;
  }

  hooksEl.refresh.addEventListener('click', () => {
    clearMessages();
    loadHooks();
  });

  // --- Start ---------------------------------------------------------------
  const saved = storageGet(STORE_CRED);
  const savedProject = parseProject(storageGet(STORE_PROJECT));
  if (saved && (isOwnerToken(saved) || savedProject)) {
    signIn(saved, savedProject);
  } else {
    showSignIn('');
  }
}());
