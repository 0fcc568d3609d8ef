import {
  Catch,
  HttpException,
  Logger,
  type ArgumentsHost,
  type ExceptionFilter,
} from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { ERRORS, IngestError } from './errors.js';
import { codeForStatus, sendError } from './http-answers.js';

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
      const code = codeForStatus(status);
      const message =
        status === 404 ? `no route for ${reply.request.method} ${url}` : ERRORS[code].message;
      const err = Object.assign(new IngestError(code, message), { status });
      sendError(reply, err, !reply.request.raw.complete);
      return;
    }
    this.logger.error(exception);
    sendError(reply, new IngestError('internal'), !reply.request.raw.complete);
  }
}
