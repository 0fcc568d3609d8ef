import {
  Catch,
  HttpException,
  Logger,
  type ArgumentsHost,
  type ExceptionFilter,
} from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { ERRORS, IngestError } from './errors.js';
import { bodyPending, codeForStatus, sendError } from './http-answers.js';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;

/**
 * Every error Nest sees (unknown route, wrong method, a thrown exception) answers in the one
 * error shape. The health endpoints keep terminus' body for their 503s: load balancers and
 * Kubernetes read its per-check details.
 */
@Catch()
export class ErrorShapeFilter implements ExceptionFilter {
  private readonly logger = new Logger('ErrorShapeFilter');

  catch(exception: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const url = reply.request.url;
      if (status === 503 && url.startsWith('/health')) {
        reply.code(503).send(exception.getResponse());
        return;
      }
      if (status === 404) {
        // A route that exists for other methods: 405 with Allow (RFC 9110 §15.5.6), not 404.
        const path = url.split('?', 1)[0];
        const allow = METHODS.filter((method) => reply.server.hasRoute({ url: path, method }));
        if (allow.length > 0) {
          reply.header('allow', allow.join(', '));
          const message = `${reply.request.method} is not allowed on ${path}; use ${allow.join(' or ')}`;
          sendError(
            reply,
            new IngestError('method_not_allowed', message),
            bodyPending(reply.request.raw),
          );
          return;
        }
      }
      const code = codeForStatus(status);
      const message =
        status === 404 ? `no route for ${reply.request.method} ${url}` : ERRORS[code].message;
      const err = Object.assign(new IngestError(code, message), { status });
      sendError(reply, err, bodyPending(reply.request.raw));
      return;
    }
    this.logger.error(exception);
    sendError(reply, new IngestError('internal'), bodyPending(reply.request.raw));
  }
}
