"""The paper's experiments: saddle escape (Fig 1, 5), executable theory (Lemmas 2, 3, 9; Sec 10),
online matrix factorization (Fig 2), the landscape experiment (Fig 3, 4), figures, and
`reproduce`, which renders every claim into a report. Uses the optimizer and the LM stack."""
