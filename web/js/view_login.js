// The signed-out page: log in, register, and one button per configured social provider.

import { demoAccounts, login, providers, register } from './api.js';
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

  // A --demo server names its seeded accounts: one click signs in as one.
  const demo = h('section', { class: 'demo-accounts', id: 'demo-accounts', 'aria-labelledby': 'demo-title', hidden: true });
  demoAccounts()
    .then(({ accounts }) => {
      if (!Array.isArray(accounts) || accounts.length === 0) return;
      replace(
        demo,
        h('h2', { id: 'demo-title' }, t('login.demo')),
        h('p', { class: 'muted' }, t('login.demoIntro')),
        h(
          'ul',
          {},
          accounts.map((a) =>
            h(
              'li',
              {},
              h(
                'button',
                {
                  type: 'button',
                  class: a.role === 'seller' ? 'primary' : null,
                  dataset: { email: a.email },
                  onclick: () =>
                    login(a.email, a.password).catch((err) => {
                      text(status, t('error.login', { code: err.code || 'NETWORK' }));
                      status.dataset.kind = 'error';
                    }),
                },
                `${t('login.demoAs', { name: a.displayName })} (${t(`login.demoRole.${a.role}`)})`,
              ),
            ),
          ),
        ),
      );
      demo.hidden = false;
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
      demo,
      h('div', { class: 'login-forms' }, loginForm, registerForm),
      social,
    ),
  );
  return () => {};
}
