/**
 * The naive variant's Nest module: one controller, its options through a token.
 */
import { Module, type DynamicModule } from '@nestjs/common';
import { NaiveIngestController, NAIVE_OPTIONS, type NaiveOptions } from './naive.controller.js';

@Module({})
export class NaiveModule {
  static forRoot(options: NaiveOptions): DynamicModule {
    return {
      module: NaiveModule,
      controllers: [NaiveIngestController],
      providers: [{ provide: NAIVE_OPTIONS, useValue: options }],
    };
  }
}
