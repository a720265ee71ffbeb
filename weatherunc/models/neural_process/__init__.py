"""Neural processes: attentive (Kim et al. 2019) and conditional (Garnelo et al. 2018)."""
