// The signed-out page: log in, register, and one button per configured social provider.

import { login, providers, register } from './api.js';
import { field, h, replace, text } from './dom.js';
import { t } from './i18n.js';

export function renderLogin(main, { notice } = {}) {
  const status = h('p', { class: 'form-status', role: 'alert', 'aria-live': 'assertive' });
  if (notice) {
    text(status, notice.text);
    status.dataset.kind = notice.kind;
  }

  const loginEmail = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const loginPassword = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const loginForm = h(
    'form',
    { class: 'card', id: 'login-form', 'aria-labelledby': 'login-title' },
    h('h2', { id: 'login-title' }, t('login.title')),
    field(t('login.email'), loginEmail),
    field(t('login.password'), loginPassword),
    h('button', { type: 'submit', class: 'primary' }, t('login.submit')),
  );
  loginForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await login(loginEmail.value.trim(), loginPassword.value);
    } catch (err) {
      text(status, t('error.login', { code: err.code || 'NETWORK' }));
      status.dataset.kind = 'error';
    }
  });

  const regEmail = h('input', { type: 'email', name: 'email', autocomplete: 'email', required: true });
  const regName = h('input', { type: 'text', name: 'displayName', autocomplete: 'nickname', maxlength: 100 });
  const regPassword = h('input', { type: 'password', name: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const registerForm = h(
    'form',
    { class: 'card', id: 'register-form', 'aria-labelledby': 'register-title' },
    h('h2', { id: 'register-title' }, t('login.register')),
    field(t('login.email'), regEmail),
    field(t('login.displayName'), regName),
    field(t('login.password'), regPassword),
    h('button', { type: 'submit' }, t('login.registerSubmit')),
  );
  registerForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await register(regEmail.value.trim(), regPassword.value, regName.value.trim());
    } catch (err) {
      text(status, t('error.generic', { code: err.code || 'NETWORK' }));
      status.dataset.kind = 'error';
    }
  });

  const social = h('section', { class: 'social', 'aria-labelledby': 'social-title', hidden: true });
  providers()
    .then((list) => {
      if (!Array.isArray(list) || list.length === 0) return;
      replace(
        social,
        h('h2', { id: 'social-title' }, t('login.social')),
        h(
          'ul',
          {},
          list.map((p) =>
            h('li', {}, h('a', { class: 'button social-button', href: p.startUrl, dataset: { provider: p.id } }, t('login.socialWith', { name: p.displayName }))),
          ),
        ),
      );
      social.hidden = false;
    })
    .catch(() => {});

  replace(
    main,
    h(
      'div',
      { class: 'login-page' },
      h('h1', {}, 'BowChat'),
      h('p', { class: 'lead' }, t('login.intro')),
      status,
      h('div', { class: 'login-forms' }, loginForm, registerForm),
      social,
    ),
  );
  return () => {};
}
