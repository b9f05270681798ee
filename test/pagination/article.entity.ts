import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** Pagination fixture: a nullable sort column, timestamps with ties, a mutable body. */
@Entity('articles')
export class Article {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  @Column({ type: 'int', nullable: true })
  rank!: number | null;

  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @Column({ type: 'text' })
  author!: string;

  @Column({ type: 'text', default: '' })
  body!: string;
}
