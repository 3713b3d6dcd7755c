import cookie from '@fastify/cookie';
import csrf from '@fastify/csrf-protection';
import formbody from '@fastify/formbody';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { registerAssets } from './assets.js';
import { registerDocs } from './docs.js';
import { sendErrorPage } from './error-page.js';
import { accountRoutes } from './console/account-routes.js';
import { consoleRoutes } from './console/routes.js';
import { tariffRoutes } from './console/tariff-routes.js';
import { webhookRoutes } from './console/webhook-routes.js';
import { portalRoutes } from './portal/routes.js';
import type { WebDeps } from './web-deps.js';

/**
 * The web site (issue 12): the customer portal and the operators' console, server-rendered, in
 * one encapsulated plugin. Cookies, form bodies and CSRF tokens exist only in here: the JSON API
 * keeps bearer tokens and JSON bodies, and answers problem+json, never these pages.
 */
export function webSite(deps: WebDeps): FastifyPluginAsync {
  const plugin: FastifyPluginAsync = async (app: FastifyInstance) => {
    await app.register(cookie);
    await app.register(formbody, { bodyLimit: 16_384 });
    // Double-submit: the secret in an HttpOnly SameSite=Strict cookie, a token derived from it in
    // every form. SameSite on the session cookies already stops other sites' posts in today's
    // browsers; the token covers older ones and same-site subdomains.
    await app.register(csrf, { cookieOpts: { path: '/', httpOnly: true, sameSite: 'strict', secure: 'auto' } });
    app.setErrorHandler(sendErrorPage);
    app.addHook('preClose', async () => deps.live.closeAll());
    registerAssets(app);
    portalRoutes(app, deps);
    consoleRoutes(app, deps);
    tariffRoutes(app, deps);
    accountRoutes(app, deps);
    webhookRoutes(app, deps);
    registerDocs(app, deps.openApi);
  };
  return Object.assign(plugin, { [Symbol.for('fastify.display-name')]: 'web-site' });
}
